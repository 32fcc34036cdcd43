//! `seedforge predict` on a tiny model written by the test: a LoRA run trained here labels the
//! same rows as `seedforge eval` predicted (its `predictions.jsonl`) from TSV, CSV, JSONL and
//! plain text, each answer a distribution whose argmax is the label; standard input is answered
//! line by line before it closes; bad rows are named with file and line, skipped or fatal.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_seedforge");

const TEXTS: [&str; 6] = [
    "a warm and kind film",
    "dull and bad, sadly",
    "we had fun",
    "a sad mess of a plot",
    "fine work by all",
    "i was bored",
];

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

fn tiny(dir: &Path) -> PathBuf {
    let model = dir.join("tiny.gguf");
    common::tiny::write_gguf(&model);
    model
}

fn predict(model: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("predict")
        .args(["--device", "cpu", "--model"])
        .arg(model)
        .args(args);
    c
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (label, probabilities) of a JSONL answer, checking it is a distribution led by its label.
fn answer(v: &Value, labels: &[&str]) -> (String, Vec<f64>) {
    let probs: Vec<f64> = labels
        .iter()
        .map(|l| v["probs"][*l].as_f64().unwrap())
        .collect();
    distribution(v["label"].as_str().unwrap(), &probs, labels)
}

fn distribution(label: &str, probs: &[f64], labels: &[&str]) -> (String, Vec<f64>) {
    let sum: f64 = probs.iter().sum();
    assert!((sum - 1.0).abs() < 1e-9, "{probs:?} sums to {sum}");
    let best = (0..probs.len())
        .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
        .unwrap();
    assert_eq!(label, labels[best], "the label is the argmax of {probs:?}");
    (label.to_string(), probs.to_vec())
}

/// The rows of a CSV or TSV answer file as (header, records).
fn delimited(path: &Path, tab: bool) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(if tab { b'\t' } else { b',' })
        .quoting(!tab)
        .from_path(path)
        .unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

#[test]
fn a_run_labels_every_format_as_eval_predicted_it() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    let ws = tmp.path().join("ws");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .arg("init")
        .output()
        .unwrap());
    let run = ws.join("runs").join("tiny-run");
    ok(&Command::new(BIN)
        .arg("--workspace")
        .arg(&ws)
        .args(["train", "--device", "cpu", "--epochs", "1", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap());
    let labels = ["negative", "positive"];
    let gold = ["1", "0", "1", "0", "1", "0"];

    // eval on a labelled TSV: its predictions.jsonl is what predict must give.
    let tsv = tmp.path().join("test.tsv");
    let mut body = String::from("sentence\tlabel\n");
    for (t, g) in TEXTS.iter().zip(gold) {
        body.push_str(&format!("{t}\t{g}\n"));
    }
    std::fs::write(&tsv, body).unwrap();
    let eval_dir = tmp.path().join("eval");
    ok(&Command::new(BIN)
        .args(["eval", "--device", "cpu", "--method", "lora", "--label-map"])
        .arg("0=negative,1=positive")
        .arg("--workspace")
        .arg(&ws)
        .arg("--model")
        .arg(&model)
        .arg("--adapter")
        .arg(&run)
        .arg("--test")
        .arg(&tsv)
        .arg("--out")
        .arg(&eval_dir)
        .output()
        .unwrap());
    let eval_rows = jsonl(&eval_dir.join("predictions.jsonl"));
    assert_eq!(eval_rows.len(), TEXTS.len());
    let expected: Vec<(usize, String, Vec<f64>)> = eval_rows
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap() as usize,
                r["predicted"].as_str().unwrap().to_string(),
                r["probs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_f64().unwrap())
                    .collect(),
            )
        })
        .collect();
    let same = |got: &[(String, Vec<f64>)], what: &str| {
        assert_eq!(got.len(), expected.len(), "{what}");
        for ((label, probs), (line, want, want_p)) in got.iter().zip(&expected) {
            assert_eq!(label, want, "{what}: row of line {line}");
            for (a, b) in probs.iter().zip(want_p) {
                assert!(
                    (a - b).abs() < 1e-6,
                    "{what}: line {line}: {probs:?} vs {want_p:?}"
                );
            }
        }
    };

    // 1. The same TSV (its label column ignored), the task found from the run's workspace.
    let out = tmp.path().join("from-tsv.jsonl");
    let err = ok(&predict(&model, &["--run"])
        .arg(&run)
        .arg("--input")
        .arg(&tsv)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert!(err.contains("labelled 6 texts"), "{err}");
    let rows = jsonl(&out);
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7]);
    for (r, t) in rows.iter().zip(TEXTS) {
        assert_eq!(r["text"], t);
    }
    let got: Vec<_> = rows.iter().map(|r| answer(r, &labels)).collect();
    same(&got, "TSV → JSONL");

    // 2. CSV with ids and a quoted comma, answers as CSV without the text.
    let csv_in = tmp.path().join("in.csv");
    let mut body = String::from("key,text\n");
    for (i, t) in TEXTS.iter().enumerate() {
        body.push_str(&format!("k{i},\"{t}\"\n"));
    }
    std::fs::write(&csv_in, body).unwrap();
    let csv_out = tmp.path().join("out.csv");
    ok(
        &predict(&model, &["--id-field", "key", "--no-text", "--run"])
            .arg(&run)
            .arg("--input")
            .arg(&csv_in)
            .arg("--out")
            .arg(&csv_out)
            .output()
            .unwrap(),
    );
    let (header, recs) = delimited(&csv_out, false);
    assert_eq!(header, ["line", "id", "label", "p_negative", "p_positive"]);
    let got: Vec<_> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r[1], format!("k{i}"));
            let p: Vec<f64> = r[3..].iter().map(|x| x.parse().unwrap()).collect();
            distribution(&r[2], &p, &labels)
        })
        .collect();
    same(&got, "CSV → CSV");

    // 3. JSONL with numeric ids, answers as TSV (by --format, to standard output).
    let jl = tmp.path().join("in.jsonl");
    let body: String = TEXTS
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{}\n", serde_json::json!({"review": t, "n": i * 10})))
        .collect();
    std::fs::write(&jl, body).unwrap();
    let o = predict(&model, &["--id-field", "n", "--format", "tsv", "--run"])
        .arg(&run)
        .arg("--input")
        .arg(&jl)
        .output()
        .unwrap();
    ok(&o);
    let tsv_out = tmp.path().join("stdout.tsv");
    std::fs::write(&tsv_out, &o.stdout).unwrap();
    let (header, recs) = delimited(&tsv_out, true);
    assert_eq!(
        header,
        ["line", "id", "text", "label", "p_negative", "p_positive"]
    );
    let got: Vec<_> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(
                (r[1].as_str(), r[2].as_str()),
                (&*format!("{}", i * 10), TEXTS[i])
            );
            let p: Vec<f64> = r[4..].iter().map(|x| x.parse().unwrap()).collect();
            distribution(&r[3], &p, &labels)
        })
        .collect();
    same(&got, "JSONL → TSV");

    // 4. Plain text, a text a line.
    let txt = tmp.path().join("in.txt");
    std::fs::write(&txt, TEXTS.join("\n")).unwrap();
    let out = tmp.path().join("from-txt.jsonl");
    ok(&predict(&model, &["--run"])
        .arg(&run)
        .arg("--input")
        .arg(&txt)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let rows = jsonl(&out);
    let got: Vec<_> = rows.iter().map(|r| answer(r, &labels)).collect();
    same(&got, "text → JSONL");
    assert_eq!(rows[5]["line"], 6);

    // A teacher run, or no classifier at all, is refused in words.
    let o = predict(&model, &["--input"]).arg(&txt).output().unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--run RUN"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `predict --method zero-shot --input -` with `args`, its standard streams piped.
fn zero_shot_stdin(model: &Path, args: &[&str]) -> std::process::Child {
    predict(model, &["--method", "zero-shot", "--input", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The next line of `rx`, or a failure after `secs`.
fn next_line(rx: &mpsc::Receiver<String>, secs: u64) -> String {
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("no answer while standard input is still open")
}

#[test]
fn standard_input_is_answered_line_by_line_before_it_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    let labels = ["negative", "positive"];
    for (format, first, third) in [
        ("text", "a warm film".to_string(), "so dull".to_string()),
        (
            "jsonl",
            serde_json::json!({"text": "a warm film", "id": "x1"}).to_string(),
            serde_json::json!({"text": "so dull", "id": "x3"}).to_string(),
        ),
    ] {
        let id: &[&str] = if format == "jsonl" {
            &["--id-field", "id"]
        } else {
            &[]
        };
        let mut child = zero_shot_stdin(&model, &[&["--input-format", format][..], id].concat());
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        // One line in, one answer out, stdin still open.
        writeln!(stdin, "{first}").unwrap();
        stdin.flush().unwrap();
        let a: Value = serde_json::from_str(&next_line(&rx, 120)).unwrap();
        assert_eq!(
            (a["line"].as_u64(), a["text"].as_str()),
            (Some(1), Some("a warm film"))
        );
        answer(&a, &labels);
        // A bad line is skipped; the next good one is answered with its own line number.
        writeln!(stdin).unwrap();
        writeln!(stdin, "{third}").unwrap();
        stdin.flush().unwrap();
        let b: Value = serde_json::from_str(&next_line(&rx, 120)).unwrap();
        assert_eq!(
            (b["line"].as_u64(), b["text"].as_str()),
            (Some(3), Some("so dull"))
        );
        if format == "jsonl" {
            assert_eq!(
                (a["id"].as_str(), b["id"].as_str()),
                (Some("x1"), Some("x3"))
            );
        }
        drop(stdin);
        let o = child.wait_with_output().unwrap();
        let err = ok(&o);
        if format == "text" {
            assert!(err.contains("-:2: empty text"), "{err}");
        }
        assert!(err.contains("labelled 2 texts"), "{err}");
        assert!(
            rx.recv_timeout(Duration::from_secs(5)).is_err(),
            "one answer per text"
        );
    }
}

/// A file, its bad rows (line, kind) and the lines labelled.
type Case<'a> = (&'a Path, &'a [(usize, &'a str)], &'a [u64]);

#[test]
fn bad_rows_are_named_with_file_and_line_then_skipped_or_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    // The tiny tokenizer spells words letter by letter: this is past its 1024 positions.
    let long = "xyz ".repeat(300);
    let txt = tmp.path().join("bad.txt");
    let mut body = b"a fine film\n\nbad \xff byte\n".to_vec();
    body.extend_from_slice(format!("{long}\nthe end\n").as_bytes());
    std::fs::write(&txt, &body).unwrap();
    let jl = tmp.path().join("bad.jsonl");
    std::fs::write(
        &jl,
        "{\"text\": \"good\"}\n{\"text\": \n{\"other\": \"x\"}\n{\"text\": 5}\n{\"text\": \"fine\"}\n",
    )
    .unwrap();
    let only_long = tmp.path().join("long.txt");
    std::fs::write(&only_long, format!("ok\n{long}\n")).unwrap();
    let name = |p: &Path| p.display().to_string();
    let zero_shot = |policy: &str, file: &Path, out: &Path| {
        predict(
            &model,
            &["--method", "zero-shot", "--on-bad-row", policy, "--input"],
        )
        .arg(file)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
    };

    // Skip: every bad row named, the rest labelled.
    let cases: [Case; 2] = [
        (
            &txt,
            &[
                (2, "empty text"),
                (3, "invalid UTF-8"),
                (4, "too long for the model"),
            ],
            &[1, 5],
        ),
        (
            &jl,
            &[
                (2, "malformed row"),
                (3, "missing field"),
                (4, "malformed row"),
            ],
            &[1, 5],
        ),
    ];
    for (file, problems, kept) in cases {
        let out = tmp.path().join("skip.jsonl");
        let err = ok(&zero_shot("skip", file, &out));
        for (line, what) in problems {
            let want = format!("{}:{line}: {what}", name(file));
            assert!(err.contains(&want), "{want} not in:\n{err}");
        }
        assert!(err.contains("3 bad rows skipped"), "{err}");
        let lines: Vec<u64> = jsonl(&out)
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, kept);
    }

    // Fail: the first bad row ends the command (a row too long for the model too), nothing is
    // written.
    for (file, first) in [
        (&txt, "2: empty text"),
        (&jl, "2: malformed row"),
        (&only_long, "2: too long for the model"),
    ] {
        let out = tmp.path().join("fail.jsonl");
        let o = zero_shot("fail", file, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{err}");
        let want = format!("{}:{first}", name(file));
        assert!(err.contains(&want), "{want} not in:\n{err}");
        assert!(!out.exists());
    }

    // Standard input: a too-long line is skipped, or fatal.
    for (policy, success) in [("skip", true), ("fail", false)] {
        let mut child = zero_shot_stdin(&model, &["--on-bad-row", policy]);
        let mut stdin = child.stdin.take().unwrap();
        write!(stdin, "{long}\nshort\n").unwrap();
        drop(stdin);
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.success(), success, "{err}");
        assert!(err.contains("-:1: too long for the model"), "{err}");
        let answers = String::from_utf8_lossy(&o.stdout).lines().count();
        assert_eq!(answers, usize::from(success), "{policy}");
    }
}

#[test]
fn bench_predict_times_each_batch_size_with_the_same_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    let dev = tmp.path().join("dev.tsv");
    let mut body = String::from("sentence\tlabel\n");
    for (i, t) in TEXTS.iter().enumerate() {
        body.push_str(&format!("{t}\t{}\n", i % 2));
    }
    std::fs::write(&dev, body).unwrap();
    let json = tmp.path().join("bench.json");
    let o = Command::new(BIN)
        .args([
            "bench",
            "predict",
            "--no-peer",
            "--device",
            "cpu",
            "--batches",
            "1,4",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--dev")
        .arg(&dev)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("cpu: "), "{out}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let figures = v["seedforge"].as_array().unwrap();
    let batches: Vec<u64> = figures
        .iter()
        .map(|f| f["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [1, 4]);
    for f in figures {
        assert_eq!(f["items"], 6);
        assert_eq!(f["same_label"], 6, "{f}");
        assert!(f["items_per_s"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bench_writer_measures_the_local_writer_unguided_and_guided() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    let json = tmp.path().join("writer.json");
    let bench = |guidance: &str| {
        Command::new(BIN)
            .args([
                "bench",
                "writer",
                "--task",
                "assets/demo",
                "--device",
                "cpu",
            ])
            .args(["--concurrency", "2", "--requests", "4", "--max-tokens", "4"])
            .args(["--guidance", guidance, "--model"])
            .arg(&model)
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap()
    };
    ok(&bench("1,2"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let writers: Vec<&str> = rows.iter().map(|r| r["writer"].as_str().unwrap()).collect();
    assert_eq!(writers, ["local (burn)", "local (burn), guidance 2"]);
    for r in rows {
        assert_eq!(r["items"], 4, "{r}");
        assert!(r["tokens"].as_u64().unwrap() > 0, "{r}");
    }
    // A scale the generator refuses is refused here too, naming it.
    let o = bench("0.5");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("guidance"), "{err}");
}
