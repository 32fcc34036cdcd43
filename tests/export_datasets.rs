//! The exported files are flat tables with one type per column, as Hugging Face `datasets`
//! needs to load them as they are, and `datasets` itself loads them, in the peers' Python venv
//! (`../shared/peers/setup.sh`, then `pip install datasets` in it; `.ci/run` does both). Without
//! it that test fails with the commands to run.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use seedforge::data::export::{ExportFormat, export_accepted, export_rejected};
use seedforge::data::task::Task;
use seedforge::data::{Item, Source, Verdict, Workspace};

fn workspace(dir: &Path) -> Workspace {
    let mut ws = Workspace::create(dir, &Task::demo(), &[]).unwrap();
    let texts = [
        ("A heartfelt, \"funny\" film,\nwith commas.", "positive"),
        ("Dull.", "negative"),
        ("Great acting, weak plot.", "positive"),
        ("Nothing happens for two hours.", "negative"),
        ("Sure.", "positive"),
    ];
    let ids = ws
        .add_items(
            texts
                .iter()
                .map(|(t, l)| {
                    let mut it = Item::new(*t, *l, Source::Generated);
                    it.raw = Some(format!("raw: {t}"));
                    it
                })
                .collect(),
        )
        .unwrap();
    ws.add_verdict(
        &ids[0],
        Verdict::pass("label_consistency").with_score("p", 0.9),
    )
    .unwrap();
    ws.add_verdict(&ids[1], Verdict::fail("malformed", "too short"))
        .unwrap();
    ws.add_verdict(
        &ids[2],
        Verdict::pass("near_dup").with_score("similarity", 0.31),
    )
    .unwrap();
    ws.add_verdict(
        &ids[4],
        Verdict::fail("label_consistency", "predicted negative").with_score("p", 0.2),
    )
    .unwrap();
    ws.accept(&ids[0]).unwrap();
    ws.accept(&ids[2]).unwrap();
    ws.edit(&ids[2], "Great acting, thin plot.").unwrap();
    ws.reject(&ids[3], Some("boring".into())).unwrap();
    ws
}

/// Each column's JSON types across rows, null aside: must be a single one.
fn column_types(
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> BTreeMap<String, Vec<&'static str>> {
    let mut types: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for r in rows {
        for (k, v) in r {
            let t = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(_) => "string",
                serde_json::Value::Number(n) if n.is_f64() => "float",
                serde_json::Value::Number(_) => "int",
                serde_json::Value::Bool(_) => "bool",
                _ => "nested",
            };
            let e = types.entry(k.clone()).or_default();
            if !e.contains(&t) {
                e.push(t);
            }
        }
    }
    types
}

fn read_jsonl(p: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn accepted_and_rejected_jsonl_are_flat_with_one_type_per_column() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(&tmp.path().join("ws"));
    let out = tmp.path().join("train.jsonl");
    let sum = export_accepted(ws.seeds(), ws.state(), &out, ExportFormat::Jsonl).unwrap();
    // 8 demo seeds + the 2 accepted items.
    assert_eq!(sum.rows, 10);
    assert_eq!(
        sum.per_label,
        [("negative".to_string(), 4), ("positive".to_string(), 6)]
    );
    let rows = read_jsonl(&out);
    let keys: Vec<&String> = rows[0].keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "label",
            "score_label_consistency_p",
            "score_near_dup_similarity",
            "source",
            "text"
        ]
    );
    assert!(
        rows.iter().all(|r| r.keys().collect::<Vec<_>>() == keys),
        "same keys on every row"
    );
    for (col, t) in column_types(&rows) {
        assert_eq!(t.len(), 1, "column {col} mixes {t:?}");
        assert!(t[0] == "string" || t[0] == "float", "column {col} is {t:?}");
    }
    let edited = rows.iter().find(|r| r["id"] == "g-000003").unwrap();
    assert_eq!(edited["text"], "Great acting, thin plot.");
    assert_eq!(edited["score_near_dup_similarity"], 0.31);
    assert!(edited["score_label_consistency_p"].is_null());

    let rej = tmp.path().join("rejected.jsonl");
    let sum = export_rejected(ws.state(), &rej, ExportFormat::Jsonl).unwrap();
    assert_eq!(sum.rows, 3);
    let rows = read_jsonl(&rej);
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("g-000002")["stage"], "malformed");
    assert_eq!(by_id("g-000002")["reason"], "too short");
    assert_eq!(by_id("g-000002")["status"], "auto_rejected");
    assert_eq!(by_id("g-000002")["raw"], "raw: Dull.");
    assert_eq!(by_id("g-000004")["stage"], "manual");
    assert_eq!(by_id("g-000004")["reason"], "boring");
    assert_eq!(by_id("g-000005")["score_label_consistency_p"], 0.2);
    for (col, t) in column_types(&rows) {
        assert_eq!(t.len(), 1, "column {col} mixes {t:?}");
    }
}

#[test]
fn hugging_face_datasets_loads_the_exports() {
    let py = common::peer_python(&["datasets"]);
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(&tmp.path().join("ws"));
    let jsonl = tmp.path().join("train.jsonl");
    let csv = tmp.path().join("train.csv");
    export_accepted(ws.seeds(), ws.state(), &jsonl, ExportFormat::Jsonl).unwrap();
    export_accepted(ws.seeds(), ws.state(), &csv, ExportFormat::Csv).unwrap();
    let script = format!(
        "import datasets\n\
         j = datasets.load_dataset('json', data_files={j:?}, split='train')\n\
         c = datasets.load_dataset('csv', data_files={c:?}, split='train')\n\
         assert j.num_rows == 10 and c.num_rows == 10, (j.num_rows, c.num_rows)\n\
         assert j[9]['text'] == 'Great acting, thin plot.', j[9]\n\
         assert c[8]['text'] == 'A heartfelt, \"funny\" film,\\nwith commas.', c[8]\n\
         print('loaded', j.column_names)\n",
        j = jsonl.to_str().unwrap(),
        c = csv.to_str().unwrap()
    );
    let o = std::process::Command::new(py)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
