//! Reading values back from the device. A dtype the code did not expect or a device error must
//! surface as an error: read as an empty vector it would score every item as the first label.

use burn::tensor::TensorData;

/// Reading a tensor's values back as `f32` failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("reading {what} back from the device as f32 failed: {reason}")]
pub struct ReadBackError {
    /// What was read (`"logits"`, `"label log-probabilities"`…).
    pub what: &'static str,
    pub reason: String,
}

/// The values of `data` as `f32`, or an error naming `what` and why.
pub fn f32_values(data: TensorData, what: &'static str) -> Result<Vec<f32>, ReadBackError> {
    data.try_into_vec::<f32>().map_err(|e| ReadBackError {
        what,
        reason: format!("{e:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_come_back_and_another_dtype_is_an_error_naming_what_was_read() {
        let ok = f32_values(TensorData::new(vec![1.5f32, -2.0], [2]), "logits").unwrap();
        assert_eq!(ok, [1.5, -2.0]);
        let err = f32_values(TensorData::new(vec![1i64, 2], [2]), "logits").unwrap_err();
        assert_eq!(err.what, "logits");
        let text = err.to_string();
        assert!(text.starts_with("reading logits back"), "{text}");
        assert!(!err.reason.is_empty(), "{text}");
    }
}
