//! The post-processor on real raw outputs of the default model, against extractions written by
//! hand (`tests/data/postprocess/`).

use seedforge::pipeline::postprocess::extract;

#[test]
fn extractions_of_real_outputs_match_the_hand_written_ones() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/postprocess/real_outputs.jsonl"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let raw = row["raw"].as_str().unwrap();
        let want = row["text"].as_str().unwrap();
        let want_bad = row["malformed"].as_bool().unwrap();
        let got = extract(
            raw,
            "movie review",
            &["Review", "Sentiment"],
            &["negative", "positive"],
        );
        n += 1;
        if got.text != want || got.malformed.is_some() != want_bad {
            failures.push(format!(
                "line {}: {raw:?}\n  got {:?} (malformed: {:?})\n  want {want:?} (malformed: {want_bad})",
                i + 1,
                got.text,
                got.malformed
            ));
        }
    }
    assert!(n >= 20);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
