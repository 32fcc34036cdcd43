//! `seedforge init` and `seedforge export` end to end, through the built binary.

use std::path::Path;
use std::process::{Command, Output};

const SST2_TRAIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/datasets/sst2/train.tsv"
);
const TREC_TRAIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/datasets/trec/train_5500.label"
);

fn seedforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seedforge"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn init_from_sst2_then_export() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("sst2");
    let ws_s = ws.to_str().unwrap();
    let o = seedforge(&[
        "--workspace",
        ws_s,
        "init",
        "--from",
        SST2_TRAIN,
        "--label-map",
        "0=negative,1=positive",
        "--per-class",
        "4",
        "--seed",
        "0",
        "--min-words",
        "6",
        "--input-noun",
        "movie review",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("read 60614 rows"), "{out}");
    assert!(out.contains("negative") && out.contains("4 of "), "{out}");
    // SST-2's training file is its reviews and their phrases: only whole reviews are drawn.
    assert!(
        out.contains("are runs of a longer row's words: drawing whole texts only"),
        "{out}"
    );
    assert!(out.contains("fragments left out"), "{out}");
    assert!(out.contains("created workspace"), "{out}");
    let task = std::fs::read_to_string(ws.join("task.toml")).unwrap();
    assert!(task.contains("name = \"sst2\""), "{task}");
    assert!(task.contains("input_noun = \"movie review\""), "{task}");
    let seeds = lines(&ws.join("seeds.jsonl"));
    assert_eq!(seeds.len(), 8);
    for s in &seeds {
        assert!(s["text"].as_str().unwrap().split_whitespace().count() >= 6);
    }
    assert_eq!(std::fs::read(ws.join("journal.jsonl")).unwrap().len(), 0);
    assert!(ws.join("runs").is_dir());
    assert!(
        !ws.join(".seedforge.lock").exists(),
        "init releases the workspace"
    );

    // A second init in the same place is refused and changes nothing.
    let o = seedforge(&["--workspace", ws_s, "init", "--from", SST2_TRAIN]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("already holds a workspace"),
        "{}",
        text(&o)
    );
    assert_eq!(lines(&ws.join("seeds.jsonl")), seeds);

    // Export: the 8 seeds, as JSONL and as CSV.
    let out_jsonl = tmp.path().join("train.jsonl");
    let o = seedforge(&[
        "--workspace",
        ws_s,
        "export",
        "--out",
        out_jsonl.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("wrote 8 seed + accepted rows"),
        "{}",
        text(&o)
    );
    let rows = lines(&out_jsonl);
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0]["source"], "seed");
    assert_eq!(rows[0]["text"], seeds[0]["text"]);
    let out_csv = tmp.path().join("train.csv");
    let o = seedforge(&[
        "--workspace",
        ws_s,
        "export",
        "--out",
        out_csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(&out_csv).unwrap();
    assert!(csv.starts_with("text,label,source,id\n"), "{csv}");
    let out_rej = tmp.path().join("rejected.jsonl");
    let o = seedforge(&[
        "--workspace",
        ws_s,
        "export",
        "--rejected",
        "--out",
        out_rej.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&out_rej).unwrap(), "");
}

#[test]
fn init_from_trec_warns_about_line_66_and_stop_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("trec");
    let o = seedforge(&[
        "--workspace",
        ws.to_str().unwrap(),
        "init",
        "--from",
        TREC_TRAIN,
        "--seed",
        "3",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("train_5500.label:66: invalid UTF-8"), "{out}");
    assert!(out.contains("(6 labels, 24 seeds)"), "{out}");
    let task = std::fs::read_to_string(ws.join("task.toml")).unwrap();
    for l in ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"] {
        assert!(task.contains(&format!("name = \"{l}\"")), "{task}");
    }

    let ws2 = tmp.path().join("trec-stop");
    let o = seedforge(&[
        "--workspace",
        ws2.to_str().unwrap(),
        "init",
        "--from",
        TREC_TRAIN,
        "--on-bad-row",
        "stop",
    ]);
    let out = text(&o);
    assert!(!o.status.success());
    assert!(out.contains("train_5500.label:66"), "{out}");
    assert!(out.contains("nothing was created"), "{out}");
    assert!(!ws2.exists());
}

#[test]
fn init_without_workspace_or_with_a_bad_map_is_a_clear_error() {
    let o = seedforge(&["init"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("init needs --workspace DIR"),
        "{}",
        text(&o)
    );
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("w");
    let o = seedforge(&[
        "--workspace",
        ws.to_str().unwrap(),
        "init",
        "--from",
        SST2_TRAIN,
        "--label-map",
        "0",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("not of the form RAW=LABEL"),
        "{}",
        text(&o)
    );
    // Without --from: the demo task.
    let o = seedforge(&["--workspace", ws.to_str().unwrap(), "init"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(lines(&ws.join("seeds.jsonl")).len(), 8);
}

#[test]
fn export_of_a_folder_that_is_not_a_workspace_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = seedforge(&[
        "--workspace",
        tmp.path().to_str().unwrap(),
        "export",
        "--out",
        "/tmp/never.jsonl",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is not a workspace (no task.toml)"),
        "{}",
        text(&o)
    );
}

#[test]
fn init_records_attributes_given_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("demo");
    let ws_s = ws.to_str().unwrap();
    let o = seedforge(&[
        "--workspace",
        ws_s,
        "init",
        "--attribute",
        "genre=comedy|horror film",
        "--attribute",
        "length=one line",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("attribute genre: each request draws one of comedy | horror film"),
        "{out}"
    );
    let task: toml::Value =
        toml::from_str(&std::fs::read_to_string(ws.join("task.toml")).unwrap()).unwrap();
    let attrs = task["attributes"].as_array().unwrap();
    assert_eq!(attrs.len(), 2);
    assert_eq!(attrs[0]["name"].as_str(), Some("genre"));
    assert_eq!(attrs[0]["values"].as_array().unwrap().len(), 2, "{attrs:?}");
    // A value list that says nothing is refused before anything is created.
    let other = tmp.path().join("other");
    let o = seedforge(&[
        "--workspace",
        other.to_str().unwrap(),
        "init",
        "--attribute",
        "genre=",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("NAME=VALUE"), "{}", text(&o));
    assert!(!other.exists());
}
