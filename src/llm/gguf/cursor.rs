//! Bounds-checked little-endian reads over the bytes of a file.
//!
//! Every read checks what is left before touching the slice, and a short read becomes a
//! `Problem::Truncated` that says what was being read, so no file content can make the parser
//! index out of bounds.

use super::error::Problem;

pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// What is being read, for messages: "metadata entry 3 of 36 ('general.name')".
    context: String,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], context: &str) -> Self {
        Cursor {
            bytes,
            pos: 0,
            context: context.to_string(),
        }
    }

    pub(crate) fn set_context(&mut self, context: String) {
        self.context = context;
    }

    pub(crate) fn context(&self) -> &str {
        &self.context
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos as u64
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub(crate) fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: u64) -> Result<&'a [u8], Problem> {
        if n > self.remaining() {
            return Err(Problem::Truncated {
                what: self.context.clone(),
                end: self.pos().saturating_add(n),
                file_len: self.file_len(),
            });
        }
        // n <= remaining, so it fits in usize and the range is in bounds.
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Problem> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Problem> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Problem> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Problem> {
        self.array().map(u64::from_le_bytes)
    }

    /// A GGUF string: `u64` byte length, then UTF-8 without a terminator.
    pub(crate) fn string(&mut self) -> Result<String, Problem> {
        let len = self.u64()?;
        // A length beyond the whole file is garbage, not a cut-off file: say so.
        if len > self.file_len() {
            return Err(Problem::StringTooLong {
                what: self.context.clone(),
                len,
                available: self.remaining(),
                file_len: self.file_len(),
            });
        }
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(Problem::InvalidUtf8 {
                what: format!("a string in {}", self.context),
            }),
        }
    }

    /// Checks that `count` items of at least `min_bytes` each can fit in what is left, so that a
    /// header cannot make the parser reserve memory for data the file does not hold.
    pub(crate) fn check_count(
        &self,
        count: u64,
        min_bytes: u64,
        items: String,
    ) -> Result<(), Problem> {
        match count.checked_mul(min_bytes) {
            Some(need) if need <= self.remaining() => Ok(()),
            _ => Err(Problem::CountTooLarge {
                what: self.context.clone(),
                count,
                items,
                min_bytes,
                available: self.remaining(),
                file_len: self.file_len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_stops_at_the_end() {
        let bytes = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut c = Cursor::new(&bytes, "test");
        assert_eq!(c.u32().ok(), Some(1));
        assert_eq!(c.u64().ok(), Some(2));
        assert_eq!(c.remaining(), 1);
        match c.u32() {
            Err(Problem::Truncated { end, file_len, .. }) => {
                assert_eq!((end, file_len), (16, 13));
            }
            other => panic!("expected truncation, got {other:?}"),
        }
        assert_eq!(c.u8().ok(), Some(9));
    }

    #[test]
    fn absurd_string_length_is_rejected_before_allocating() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let mut c = Cursor::new(&bytes, "a key");
        assert!(matches!(
            c.string(),
            Err(Problem::StringTooLong {
                len: u64::MAX,
                available: 3,
                ..
            })
        ));
        // A plausible length that runs past the end is a truncated file.
        let mut bytes = 5u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let mut c = Cursor::new(&bytes, "a key");
        assert!(matches!(
            c.string(),
            Err(Problem::Truncated {
                end: 13,
                file_len: 11,
                ..
            })
        ));
    }

    #[test]
    fn counts_are_checked_with_overflow() {
        let bytes = [0u8; 100];
        let c = Cursor::new(&bytes, "x");
        assert!(c.check_count(10, 10, "items".into()).is_ok());
        assert!(c.check_count(11, 10, "items".into()).is_err());
        assert!(c.check_count(u64::MAX, 2, "items".into()).is_err());
    }
}
