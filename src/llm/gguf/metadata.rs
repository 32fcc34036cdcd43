//! GGUF metadata values: the thirteen value types and typed arrays.
//!
//! Arrays are stored as typed vectors rather than `Vec<MetaValue>`: a vocabulary of 50k tokens
//! then costs one `Vec<String>`, callers get `&[String]` or `&[i32]` without copying, and an empty
//! array keeps its element type, so a file round-trips through the writer unchanged.

use std::fmt;

/// The on-disk type tag of a metadata value (`gguf_metadata_value_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl MetaValueType {
    /// The type with this on-disk id (0 to 12).
    pub fn from_id(id: u32) -> Option<MetaValueType> {
        use MetaValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The on-disk id.
    pub fn id(self) -> u32 {
        use MetaValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// Short lowercase name used in messages (`"u32"`, `"string"`).
    pub fn name(self) -> &'static str {
        use MetaValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// The fewest bytes one value of this type takes on disk: its size for scalars, the length
    /// prefix for a string, the element type and count for an array. Used to reject element
    /// counts that cannot possibly fit in what is left of a file.
    pub(crate) fn min_encoded_len(self) -> u64 {
        use MetaValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

impl fmt::Display for MetaValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(MetaArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A metadata array: all elements share one type. Arrays may nest (`Array(Vec<MetaArray>)`), and
/// the inner arrays may differ in type and length.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<MetaArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl MetaValue {
    /// The on-disk type tag.
    pub fn value_type(&self) -> MetaValueType {
        use MetaValue as V;
        use MetaValueType as T;
        match self {
            V::U8(_) => T::U8,
            V::I8(_) => T::I8,
            V::U16(_) => T::U16,
            V::I16(_) => T::I16,
            V::U32(_) => T::U32,
            V::I32(_) => T::I32,
            V::F32(_) => T::F32,
            V::Bool(_) => T::Bool,
            V::String(_) => T::String,
            V::Array(_) => T::Array,
            V::U64(_) => T::U64,
            V::I64(_) => T::I64,
            V::F64(_) => T::F64,
        }
    }

    /// A description for messages: `"a u32"`, `"an array of string"`.
    pub fn describe(&self) -> String {
        match self {
            MetaValue::Array(a) => format!("an array of {}", a.describe_elements()),
            other => {
                let name = other.value_type().name();
                // By sound: "an i32", "an f32", but "a u32".
                let article = if name.starts_with(['a', 'i', 'f']) {
                    "an"
                } else {
                    "a"
                };
                format!("{article} {name}")
            }
        }
    }

    /// The value as an integer, if it is one (of any width or signedness).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v.into(),
            MetaValue::I8(v) => v.into(),
            MetaValue::U16(v) => v.into(),
            MetaValue::I16(v) => v.into(),
            MetaValue::U32(v) => v.into(),
            MetaValue::I32(v) => v.into(),
            MetaValue::U64(v) => v.into(),
            MetaValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as an `f64`, if it is a float (f32 widens exactly).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl MetaArray {
    /// The type of the elements.
    pub fn element_type(&self) -> MetaValueType {
        use MetaArray as A;
        use MetaValueType as T;
        match self {
            A::U8(_) => T::U8,
            A::I8(_) => T::I8,
            A::U16(_) => T::U16,
            A::I16(_) => T::I16,
            A::U32(_) => T::U32,
            A::I32(_) => T::I32,
            A::F32(_) => T::F32,
            A::Bool(_) => T::Bool,
            A::String(_) => T::String,
            A::Array(_) => T::Array,
            A::U64(_) => T::U64,
            A::I64(_) => T::I64,
            A::F64(_) => T::F64,
        }
    }

    pub fn len(&self) -> usize {
        use MetaArray as A;
        match self {
            A::U8(v) => v.len(),
            A::I8(v) => v.len(),
            A::U16(v) => v.len(),
            A::I16(v) => v.len(),
            A::U32(v) => v.len(),
            A::I32(v) => v.len(),
            A::F32(v) => v.len(),
            A::Bool(v) => v.len(),
            A::String(v) => v.len(),
            A::Array(v) => v.len(),
            A::U64(v) => v.len(),
            A::I64(v) => v.len(),
            A::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a standalone value (cloned).
    pub fn get(&self, i: usize) -> Option<MetaValue> {
        use MetaArray as A;
        use MetaValue as V;
        Some(match self {
            A::U8(v) => V::U8(*v.get(i)?),
            A::I8(v) => V::I8(*v.get(i)?),
            A::U16(v) => V::U16(*v.get(i)?),
            A::I16(v) => V::I16(*v.get(i)?),
            A::U32(v) => V::U32(*v.get(i)?),
            A::I32(v) => V::I32(*v.get(i)?),
            A::F32(v) => V::F32(*v.get(i)?),
            A::Bool(v) => V::Bool(*v.get(i)?),
            A::String(v) => V::String(v.get(i)?.clone()),
            A::Array(v) => V::Array(v.get(i)?.clone()),
            A::U64(v) => V::U64(*v.get(i)?),
            A::I64(v) => V::I64(*v.get(i)?),
            A::F64(v) => V::F64(*v.get(i)?),
        })
    }

    fn describe_elements(&self) -> String {
        match self {
            MetaArray::Array(inner) => match inner.first() {
                Some(first) => format!("array of {}", first.describe_elements()),
                None => "array".to_string(),
            },
            other => other.element_type().name().to_string(),
        }
    }
}

macro_rules! scalar_conversions {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for MetaValue {
            fn from(v: $t) -> Self {
                MetaValue::$variant(v)
            }
        }
        impl From<Vec<$t>> for MetaArray {
            fn from(v: Vec<$t>) -> Self {
                MetaArray::$variant(v)
            }
        }
        impl From<Vec<$t>> for MetaValue {
            fn from(v: Vec<$t>) -> Self {
                MetaValue::Array(MetaArray::$variant(v))
            }
        }
        impl From<&[$t]> for MetaValue {
            fn from(v: &[$t]) -> Self {
                MetaValue::Array(MetaArray::$variant(v.to_vec()))
            }
        }
    )*};
}

scalar_conversions!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
    bool => Bool, String => String, u64 => U64, i64 => I64, f64 => F64, MetaArray => Array,
);

impl From<&str> for MetaValue {
    fn from(v: &str) -> Self {
        MetaValue::String(v.to_string())
    }
}

impl From<Vec<&str>> for MetaValue {
    fn from(v: Vec<&str>) -> Self {
        MetaValue::Array(MetaArray::String(
            v.into_iter().map(str::to_string).collect(),
        ))
    }
}

impl From<&[&str]> for MetaValue {
    fn from(v: &[&str]) -> Self {
        MetaValue::Array(MetaArray::String(v.iter().map(|s| s.to_string()).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_round_trip() {
        for id in 0..13 {
            assert_eq!(MetaValueType::from_id(id).map(|t| t.id()), Some(id));
        }
        assert_eq!(MetaValueType::from_id(13), None);
    }

    #[test]
    fn conversions_pick_the_obvious_type() {
        assert_eq!(MetaValue::from(3u32), MetaValue::U32(3));
        assert_eq!(MetaValue::from("x"), MetaValue::String("x".into()));
        let empty: Vec<String> = Vec::new();
        assert_eq!(
            MetaValue::from(empty),
            MetaValue::Array(MetaArray::String(vec![]))
        );
        assert_eq!(
            MetaValue::from(vec!["a", "b"]).describe(),
            "an array of string"
        );
        assert_eq!(MetaValue::from(1i8).describe(), "an i8");
        assert_eq!(MetaValue::from(1u8).describe(), "a u8");
        assert_eq!(MetaValue::from(1.0f32).describe(), "an f32");
    }

    #[test]
    fn integer_and_float_views() {
        assert_eq!(MetaValue::I64(-5).as_i128(), Some(-5));
        assert_eq!(MetaValue::U64(u64::MAX).as_i128(), Some(u64::MAX as i128));
        assert_eq!(MetaValue::F32(0.5).as_i128(), None);
        assert_eq!(MetaValue::F32(0.1).as_f64(), Some(0.1f32 as f64));
        let a = MetaArray::I32(vec![7, 8]);
        assert_eq!(a.get(1), Some(MetaValue::I32(8)));
        assert_eq!(a.get(2), None);
    }
}
