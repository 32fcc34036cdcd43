//! SST-2 rows as the peers read them (`sentence<TAB>label`), for the benchmarks and the tests
//! that measure on SST-2.

use std::path::Path;

use crate::data::task::{Example, Task};
use crate::util::rng::Rng;

/// Reads an SST-2 TSV (`sentence<TAB>label`, header line, 0 = negative, 1 = positive).
pub fn read_sst2(path: &Path) -> anyhow::Result<Vec<Example>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == "sentence\tlabel" => {}
        other => anyhow::bail!(
            "{}:1: expected the header 'sentence<TAB>label', found {:?}",
            path.display(),
            other.map(|(_, l)| l)
        ),
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (s, l) = line.rsplit_once('\t').ok_or_else(|| {
            anyhow::anyhow!("{}:{}: expected 'sentence<TAB>0|1'", path.display(), i + 1)
        })?;
        let label = match l.trim() {
            "0" => "negative",
            "1" => "positive",
            other => anyhow::bail!(
                "{}:{}: label must be 0 or 1, found {other:?}",
                path.display(),
                i + 1
            ),
        };
        out.push(Example {
            text: s.trim().to_string(),
            label: label.to_string(),
        });
    }
    Ok(out)
}

/// The SST-2 task: the bundled demo task's labels and prompt fields (`Review:` / `Sentiment:`,
/// verbalizers `negative` / `positive`), no seeds.
pub fn sst2_task() -> Task {
    let mut t = Task::demo();
    t.seeds.clear();
    t
}

/// `n` rows drawn without replacement with `seed` (the peer uses Python's
/// `random.Random(0).sample`; the same idea, not the same draw).
pub fn sample(rows: &[Example], n: usize, seed: u64) -> Vec<Example> {
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    Rng::new(seed).shuffle(&mut idx);
    idx.into_iter().take(n).map(|i| rows[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sst2_reader_checks_header_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tsv");
        std::fs::write(&p, "sentence\tlabel\na fine film .\t1\nbad .\t0\n\n").unwrap();
        let rows = read_sst2(&p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].label, "positive");
        assert_eq!(rows[1].text, "bad .");
        std::fs::write(&p, "sentence\tlabel\nok\t2\n").unwrap();
        let e = read_sst2(&p).unwrap_err().to_string();
        assert!(e.contains("x.tsv:2:"), "{e}");
        std::fs::write(&p, "text\tlabel\n").unwrap();
        assert!(read_sst2(&p).unwrap_err().to_string().contains(":1:"));
    }
}
