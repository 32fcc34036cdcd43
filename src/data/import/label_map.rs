//! `0=negative,1=positive`: the labels a file uses, mapped to the task's label names.

use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    entries: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelMapError {
    #[error("label map entry `{0}` is not of the form RAW=LABEL")]
    Entry(String),
    #[error("label map names `{0}` twice")]
    Duplicate(String),
    #[error("the label map is empty")]
    Empty,
}

impl LabelMap {
    /// The task label for a raw label in the file.
    pub fn get(&self, raw: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == raw)
            .map(|(_, v)| v.as_str())
    }

    /// The raw labels, in the map's order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The task labels, in the map's order, each once (two raw labels may merge into one).
    pub fn labels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, v) in &self.entries {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    }
}

impl FromStr for LabelMap {
    type Err = LabelMapError;

    /// Entries separated by commas, each `RAW=LABEL` (`RAW→LABEL` and `RAW->LABEL` work too;
    /// not `:`, which TREC labels contain).
    fn from_str(s: &str) -> Result<LabelMap, LabelMapError> {
        let mut entries: Vec<(String, String)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = ["->", "→", "="]
                .iter()
                .find_map(|sep| part.split_once(sep))
                .ok_or_else(|| LabelMapError::Entry(part.to_string()))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return Err(LabelMapError::Entry(part.to_string()));
            }
            if entries.iter().any(|(e, _)| e == k) {
                return Err(LabelMapError::Duplicate(k.to_string()));
            }
            entries.push((k.to_string(), v.to_string()));
        }
        if entries.is_empty() {
            return Err(LabelMapError::Empty);
        }
        Ok(LabelMap { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_arrow_spellings_and_keeps_order() {
        let m: LabelMap = "1=positive, 0→negative,2->negative".parse().unwrap();
        assert_eq!(m.get("0"), Some("negative"));
        assert_eq!(m.get("1"), Some("positive"));
        assert_eq!(m.get("2"), Some("negative"));
        assert_eq!(m.get("3"), None);
        assert_eq!(m.labels(), ["positive", "negative"]);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["1", "0", "2"]);
    }

    #[test]
    fn bad_maps_are_errors() {
        assert_eq!(
            "0".parse::<LabelMap>(),
            Err(LabelMapError::Entry("0".into()))
        );
        assert_eq!(
            "=x".parse::<LabelMap>(),
            Err(LabelMapError::Entry("=x".into()))
        );
        assert_eq!(
            "0=a,0=b".parse::<LabelMap>(),
            Err(LabelMapError::Duplicate("0".into()))
        );
        assert_eq!(" , ".parse::<LabelMap>(), Err(LabelMapError::Empty));
    }
}
