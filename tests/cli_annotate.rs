//! `seedforge annotate` on a tiny model written by the test: the agreement it reports with a
//! labelled file equals the one counted from the items it wrote; with `--workspace` the items are
//! journalled as `annotated`, keep that source through accept and export, and a training run on
//! the workspace counts the accepted one.

mod common;

use std::process::Command;

use seedforge::data::item::ItemId;
use seedforge::data::state::Status;
use seedforge::data::workspace::Workspace;

#[test]
fn annotated_items_report_agreement_and_keep_their_source_through_export_and_training() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, ws) = common::tiny::model_and_demo_workspace(tmp.path());
    let bin = env!("CARGO_BIN_EXE_seedforge");

    let input = tmp.path().join("texts.tsv");
    std::fs::write(
        &input,
        "text\tlabel\n\
         a warm and kind film\tpositive\n\
         dull and bad\tnegative\n\
         we had fun\tpositive\n\
         a sad mess of a plot\tnegative\n\
         fine work by all\tpositive\n\
         i was bored\tnegative\n",
    )
    .unwrap();
    let out = tmp.path().join("annotated.jsonl");
    let o = Command::new(bin)
        .arg("--workspace")
        .arg(&ws)
        .args(["annotate", "--device", "cpu", "--min-confidence", "0"])
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let items: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 6);
    let agree = items
        .iter()
        .filter(|i| i["label"] == i["file_label"])
        .count();
    let expected = format!("{:.1}% of 6 texts", 100.0 * agree as f64 / 6.0);
    assert!(stdout.contains(&expected), "{stdout} (expected {expected})");
    for i in &items {
        assert_eq!(i["source"], "annotated");
        let p: f64 = i["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[1].as_f64().unwrap())
            .sum();
        assert!((p - 1.0).abs() < 1e-6, "{i}");
    }

    // In the journal as annotated; accept one and export it.
    let id = {
        let mut w = Workspace::open(&ws).unwrap();
        let annotated: Vec<_> = w
            .state()
            .items()
            .iter()
            .filter(|s| s.source().as_str() == "annotated")
            .map(|s| s.id().clone())
            .collect();
        assert_eq!(annotated.len(), 6);
        verdicts_follow_their_item(w.journal_path(), &annotated);
        let id = annotated[0].clone();
        w.accept(&id).unwrap();
        assert_eq!(w.state().with_status(Status::Accepted).count(), 1);
        id
    };
    let export = tmp.path().join("export.jsonl");
    let o = Command::new(bin)
        .arg("--workspace")
        .arg(&ws)
        .arg("export")
        .arg("--out")
        .arg(&export)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ours: Vec<_> = rows.iter().filter(|r| r["id"] == id.to_string()).collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["source"], "annotated");

    // Training on the workspace takes the seeds and the accepted item.
    let run = tmp.path().join("run");
    let o = Command::new(bin)
        .arg("--workspace")
        .arg(&ws)
        .args(["train", "--device", "cpu", "--epochs", "1"])
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["extra_examples"], 1, "{config}");
    assert_eq!(config["real_examples"], 8, "{config}");
    assert!(
        config["extra_sources"][0]
            .as_str()
            .unwrap()
            .contains("1 accepted")
    );
    // The accepted item is real text the model labelled, not text it invented.
    assert_eq!(config["generated_examples"], 0, "{config}");

    // Staged: that run's adapter trains on, on the seeds alone.
    let staged = tmp.path().join("staged");
    let o = Command::new(bin)
        .arg("--workspace")
        .arg(&ws)
        .args(["train", "--device", "cpu", "--epochs", "1", "--no-accepted"])
        .arg("--model")
        .arg(&model)
        .arg("--start-from")
        .arg(&run)
        .arg("--out")
        .arg(&staged)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(staged.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["started_from"],
        run.display().to_string(),
        "{config}"
    );
    assert_eq!(config["extra_examples"], 0, "{config}");
    // A run folder without an adapter cannot be started from: said with the folder.
    let o = Command::new(bin)
        .arg("--workspace")
        .arg(&ws)
        .args(["train", "--device", "cpu", "--epochs", "1", "--start-from"])
        .arg(tmp.path())
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(tmp.path().join("nothing"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("starting from the adapter in") && err.contains("adapter_config.json"),
        "{err}"
    );
}

/// Each item's verdicts come right after it in the journal, before the next item: written in the
/// same append, so no crash can leave an annotated item without its verdicts.
fn verdicts_follow_their_item(journal: &std::path::Path, annotated: &[ItemId]) {
    let mut last_item = None;
    let mut judged = std::collections::HashMap::<String, usize>::new();
    for line in std::fs::read_to_string(journal).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        match r["type"].as_str() {
            Some("item_added") => last_item = r["item"]["id"].as_str().map(str::to_owned),
            Some("verdict") => {
                let id = r["item_id"].as_str().unwrap().to_owned();
                assert_eq!(Some(&id), last_item.as_ref(), "{line}");
                *judged.entry(id).or_default() += 1;
            }
            _ => {}
        }
    }
    for id in annotated {
        assert!(
            judged.get(&id.to_string()).is_some_and(|&n| n > 0),
            "{id} has no verdict"
        );
    }
}
