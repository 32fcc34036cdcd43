//! The remote judge against a real OpenAI-compatible server: llama-cpp-python's
//! (`python -m llama_cpp.server`, from the peers' venv: `bash ../shared/peers/setup.sh
//! --with-llamacpp`) serving the default GGUF on 127.0.0.1, started once for the whole file. It
//! must agree with the local judge on the same items (the same Q4_1 model on both sides), say
//! which server judged, label texts for `annotate`, check labels for `filter` and the
//! experiment, and fail with a message naming the server when it gives no log-probabilities
//! (a proxy in front of the real server strips them) or a label word is not among them.

mod common;

use common::llama_server::{ALIAS, one_at_a_time, proxy, read_request, start_for_process, url};
use common::{lines, run, seedforge};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use burn::tensor::Device;
use seedforge::data::task::Task;
use seedforge::llm::remote::{Endpoint, Remote, RemoteSettings};
use seedforge::pipeline::classify::{Classifier, ClassifierOptions, interleave_by_label};
use seedforge::pipeline::prompt::Templates;
use serde_json::Value;

/// The file's one server, started on first use and kept for the whole file.
fn server_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| start_for_process(&["--interrupt_requests", "false"]))
}

fn server_url() -> String {
    url(server_port())
}

/// Reviews of both kinds, some plain, some hard (the judges' margins differ in size).
const TEXTS: [&str; 10] = [
    "A dull, lifeless film that wastes a fine cast on a script with nothing to say.",
    "One of the most joyful, beautifully acted films I have seen in years.",
    "The jokes fall flat and the ending drags on forever.",
    "A clever, heartfelt story that kept me smiling from start to finish.",
    "I wanted to like it, but the pacing killed whatever charm it had.",
    "Gorgeous to look at and surprisingly moving.",
    "Not terrible, though I forgot it by the time I got home.",
    "The soundtrack is lovely; the rest is a mess.",
    "An utterly charming comedy that had the whole audience laughing.",
    "Two hours of noise and bad dialogue.",
];

fn remote() -> Remote {
    let mut s = RemoteSettings::new(Endpoint::new(server_url()));
    s.concurrency = 2;
    // SmolLM2-135M puts the losing label word far down its next words (" negative" is not
    // among the first 100 after a glowing review); this server returns as many as asked.
    s.top_logprobs = 5000;
    Remote::connect(s).expect("connect to the server")
}

/// The remote judge reads the same prompt as the local one and divides by the same content-free
/// prior, so on the same Q4_1 weights their distributions differ only by the two programs'
/// arithmetic (llama.cpp multiplies the Q4_1 weights by activations quantized to Q8_1;
/// seedforge by f32 ones). Measured on these 10 reviews and three judges: label-word
/// log-likelihoods within 0.29 nats (the largest on unlikely words, ~−8), probabilities within
/// 0.041. The bound, 0.06, leaves room for the server's kernels choosing another path on
/// another CPU. The verdicts must agree wherever the local judge is not torn (a margin under
/// the bound may go either way).
#[test]
fn the_remote_judge_agrees_with_the_local_one_on_the_same_model() {
    let _turn = one_at_a_time();
    let loaded = seedforge::llm::load::load(&common::model_path(), &Device::flex()).unwrap();
    let task = Task::demo();
    let templates = Templates::for_task(&task).unwrap();
    let remote = remote();
    const TOLERANCE: f64 = 0.06;
    let mut worst: f64 = 0.0;
    let mut worst_ll: f64 = 0.0;
    // Zero-shot with an instruction (without one SmolLM2-135M's label words are not among its
    // 400 most probable next tokens), and the filter's own judge: the seeds as demonstrations,
    // calibrated.
    let instruction = "Is the sentiment of this movie review negative or positive?";
    for (name, demos, calibrate, instruction) in [
        ("zero-shot", Vec::new(), false, Some(instruction)),
        ("zero-shot, calibrated", Vec::new(), true, Some(instruction)),
        (
            "icl, calibrated",
            interleave_by_label(&task.seeds, &task.labels),
            true,
            None,
        ),
    ] {
        let options = ClassifierOptions {
            demos,
            calibrate,
            instruction: instruction.map(str::to_string),
            ..ClassifierOptions::default()
        };
        let local = Classifier::new(
            &loaded.model,
            &loaded.tokenizer,
            &task,
            &templates,
            options.clone(),
        )
        .unwrap();
        let server = Classifier::remote(&remote, &task, &templates, options).unwrap();
        assert_eq!(
            local.prompt(TEXTS[0]).unwrap(),
            server.prompt(TEXTS[0]).unwrap()
        );
        let a = local.classify(&TEXTS).unwrap();
        let b = server.classify(&TEXTS).unwrap();
        let mut max_p: f64 = 0.0;
        let mut max_ll: f64 = 0.0;
        for ((text, l), r) in TEXTS.iter().zip(&a).zip(&b) {
            assert_eq!(l.judge, None);
            let judge = r.judge.as_ref().expect("the server's prediction names it");
            assert_eq!(judge["endpoint"], server_url());
            assert_eq!(judge["model"], ALIAS);
            for ((ll, pl), (lr, pr)) in l.probs.iter().zip(&r.probs) {
                assert_eq!(ll, lr);
                max_p = max_p.max((pl - pr).abs());
            }
            for (x, y) in l.log_likelihoods.iter().zip(&r.log_likelihoods) {
                max_ll = max_ll.max((x - y).abs());
            }
            eprintln!(
                "{name}: {text:?}: local {} {:.4}, server {} {:.4}",
                l.label,
                l.prob_of(&l.label).unwrap(),
                r.label,
                r.prob_of(&r.label).unwrap()
            );
            if l.margin() > TOLERANCE {
                assert_eq!(l.label, r.label, "{name}: {text:?}: {l:?} vs {r:?}");
            }
        }
        eprintln!(
            "{name}: max |p_local − p_server| = {max_p:.4}; max |log-likelihood difference| = \
             {max_ll:.4} nats"
        );
        worst = worst.max(max_p);
        worst_ll = worst_ll.max(max_ll);
    }
    eprintln!("overall: max probability difference {worst:.4}, log-likelihood {worst_ll:.4}");
    assert!(
        worst < TOLERANCE,
        "the judges differ by {worst:.4} in probability"
    );
    assert!(
        worst_ll < 0.5,
        "the label words' log-likelihoods differ by {worst_ll:.3} nats"
    );
}

/// A proxy in front of the server that strips `logprobs` from every completion it passes on,
/// as a server that ignores the parameter answers.
fn stripping_proxy(upstream: u16) -> u16 {
    proxy(move |conn| {
        let _ = strip(conn, upstream);
    })
}

fn strip(mut client: TcpStream, upstream: u16) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client)? else {
        return Ok(());
    };
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(&request.upstream)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let Some(split) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return client.write_all(&answer);
    };
    let (ahead, body) = (&answer[..split], &answer[split + 4..]);
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return client.write_all(&answer);
    };
    if let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) {
        for c in choices {
            c["logprobs"] = Value::Null;
        }
    }
    let body = serde_json::to_vec(&v).unwrap();
    let ahead: Vec<String> = String::from_utf8_lossy(ahead)
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
        .map(str::to_string)
        .collect();
    let mut out = ahead.join("\r\n").into_bytes();
    out.extend_from_slice(format!("\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    client.write_all(&out)
}

/// Items for `filter`: two per class, one written against its label.
fn write_items(path: &Path) {
    let items = [
        (TEXTS[0], "negative"),
        (TEXTS[1], "positive"),
        (TEXTS[3], "positive"),
        (TEXTS[9], "positive"),
    ];
    let body: String = items
        .iter()
        .map(|(t, l)| format!("{}\n", serde_json::json!({"text": t, "label": l})))
        .collect();
    std::fs::write(path, body).unwrap();
}

fn filter(url: &str, items: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = seedforge();
    c.args(["filter", "--device", "cpu", "--model"])
        .arg(common::model_path())
        .args(["--judge-url", url, "--items"])
        .arg(items)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

#[test]
fn no_log_probabilities_or_a_missing_label_word_is_an_error_naming_the_server() {
    let _turn = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let items = tmp.path().join("items.jsonl");
    write_items(&items);
    let out = tmp.path().join("out.jsonl");

    // A server that answers without log-probabilities.
    let proxy = format!("http://127.0.0.1:{}/v1", stripping_proxy(server_port()));
    let o = run(filter(&proxy, &items, &out, &[]));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&proxy) && err.contains("returned no log-probabilities"),
        "{err}"
    );

    // A label word not among the top log-probabilities the server returned: on the zero-shot
    // prompt SmolLM2-135M's most probable next words are rarely the labels (" A", " The"…).
    let o = run(filter(
        &server_url(),
        &items,
        &out,
        &["--judge", "zero-shot", "--judge-top-logprobs", "3"],
    ));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&server_url())
            && (err.contains("\" negative\"") || err.contains("\" positive\""))
            && err.contains("not among the log-probabilities")
            && err.contains("--judge-top-logprobs"),
        "{err}"
    );
}

#[test]
fn filter_and_annotate_judge_through_the_server_and_say_so() {
    let _turn = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let items = tmp.path().join("items.jsonl");
    write_items(&items);
    let out = tmp.path().join("filtered.jsonl");
    let o = run(filter(&server_url(), &items, &out, &[]));
    assert!(o.status.success());
    let judged = lines(&out);
    assert_eq!(judged.len(), 4);
    for it in &judged {
        let check = it["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["stage"] == "label_consistency")
            .expect("a label-consistency verdict");
        assert_eq!(check["judge"]["endpoint"], server_url());
        assert_eq!(check["judge"]["model"], ALIAS);
        assert_eq!(check["probs"].as_array().unwrap().len(), 2);
    }
    // The plain reviews keep their label; "two hours of noise" is no positive one.
    assert_eq!(judged[0]["kept"], true);
    assert_eq!(judged[1]["kept"], true);
    assert_eq!(judged[3]["kept"], false, "{}", judged[3]);

    // Annotate: the server's label and its confidence for each text.
    let input = tmp.path().join("texts.jsonl");
    let body: String = TEXTS[..4]
        .iter()
        .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
        .collect();
    std::fs::write(&input, body).unwrap();
    let labelled = tmp.path().join("labelled.jsonl");
    let mut c = seedforge();
    c.args(["annotate", "--device", "cpu", "--model"])
        .arg(common::model_path())
        .args(["--method", "icl", "--judge-url", &server_url(), "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&labelled)
        .args(["--min-confidence", "0.5"]);
    let o = run(c);
    assert!(o.status.success());
    let rows = lines(&labelled);
    assert_eq!(rows.len(), 4);
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["negative", "positive", "negative", "positive"]);
    for r in &rows {
        let c = r["confidence"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&c), "{r}");
        assert_eq!(r["judge"]["endpoint"], server_url());
        let conf = r["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["stage"] == "confidence")
            .unwrap();
        assert_eq!(conf["judge"]["endpoint"], server_url());
        assert_eq!(conf["scores"]["confidence"].as_f64().unwrap(), c);
    }
}

/// A tiny experiment end to end with the server writing and judging: the report names it.
#[test]
fn an_experiment_writes_and_judges_through_the_server() {
    let _turn = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let task = Task::demo();
    let mut rows: Vec<String> = task
        .seeds
        .iter()
        .map(|s| format!("{}\t{}", s.text, s.label))
        .collect();
    rows.insert(0, "sentence\tlabel".into());
    std::fs::write(data.join("train.tsv"), rows.join("\n") + "\n").unwrap();
    let test = [format!(
        "sentence\tlabel\n{}\tnegative\n{}\tpositive\n",
        TEXTS[0], TEXTS[1]
    )]
    .concat();
    std::fs::write(data.join("test.tsv"), test).unwrap();
    let out = tmp.path().join("exp");
    let mut c = seedforge();
    c.args(["experiment", "--device", "cpu", "--model"])
        .arg(common::model_path())
        .arg("--dataset")
        .arg(data.join("train.tsv"))
        .arg("--test")
        .arg(data.join("test.tsv"))
        .args(["--arms", "lora-synthetic", "--seeds-per-class", "2"])
        .args([
            "--per-class",
            "2",
            "--max-tokens",
            "24",
            "--max-attempts-factor",
            "1",
        ])
        .args(["--epochs", "1", "--min-words", "1"])
        .args(["--writer", &server_url(), "--writer-concurrency", "2"])
        .args(["--judge", "icl", "--judge-url", &server_url()])
        .arg("--out")
        .arg(&out);
    let started = Instant::now();
    let o = run(c);
    eprintln!("experiment: {:.0} s", started.elapsed().as_secs_f64());
    assert!(o.status.success());
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains(&format!(
            "written by the server at {} (model {ALIAS}, /completions)",
            server_url()
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "log-probabilities of the label words on the server at {}",
            server_url()
        )),
        "{report}"
    );
    // The generated items were judged by the server.
    let seed_dir = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("filtered.jsonl").is_file())
        .expect("a draw's folder with filtered.jsonl");
    let filtered = lines(&seed_dir.join("filtered.jsonl"));
    assert_eq!(filtered.len(), 4);
    assert!(filtered.iter().any(|f| {
        f["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["stage"] == "label_consistency" && v["judge"]["endpoint"] == server_url())
    }));
}

/// The workbench's generate job with the server writing and judging: the screen is told who
/// judges, and every label-consistency verdict in the journal names the server.
#[test]
fn the_workbench_job_checks_labels_on_the_server() {
    let _turn = one_at_a_time();
    use common::engine::until_end;
    use seedforge::engine::{Command as EngineCommand, Event};
    use seedforge::pipeline::filters::FilterSettings;
    use seedforge::pipeline::generate::GenerateSettings;

    let tmp = tempfile::tempdir().unwrap();
    // The local model only plans the prompts here: the tiny one.
    let (ws, engine, mut rx) = common::engine::on_tiny_demo(tmp.path());
    let mut settings = GenerateSettings {
        per_class: 3,
        max_attempts_factor: 1,
        ..Default::default()
    };
    settings.sampling.max_new_tokens = 24;
    let server = || {
        let mut s = RemoteSettings::new(Endpoint::new(server_url()));
        s.concurrency = 2;
        Box::new(s)
    };
    settings.set_remote(Some(server()));
    engine
        .send(EngineCommand::Generate {
            settings,
            filters: FilterSettings {
                min_words: 1,
                remote_judge: Some(server()),
                ..FilterSettings::default()
            },
            adapter: None,
        })
        .unwrap();
    let events = until_end(&mut rx);
    assert!(
        matches!(events.last(), Some(Event::JobFinished { .. })),
        "{:?}",
        events.last()
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::JudgeChosen { summary, .. }
            if summary.contains(&server_url()) && summary.starts_with("judge icl on"))),
        "no JudgeChosen naming the server"
    );
    let w = ws.lock().unwrap();
    let items = w.state().items();
    assert_eq!(items.len(), 6);
    let mut checked = 0;
    for it in items {
        let cheap_ok = it
            .verdicts()
            .iter()
            .filter(|v| v.stage != "label_consistency")
            .all(|v| v.pass);
        let check = it
            .verdicts()
            .iter()
            .find(|v| v.stage == "label_consistency");
        assert_eq!(cheap_ok, check.is_some(), "{:?}", it.verdicts());
        if let Some(v) = check {
            let judge = v.judge.as_ref().expect("the verdict names its judge");
            assert_eq!(judge["endpoint"], server_url());
            assert_eq!(judge["model"], ALIAS);
            checked += 1;
        }
    }
    assert!(checked > 0, "no item reached the label check");
    drop(w);
    engine.shutdown();
}

/// The workbench stops a server's generation part-way; the same settings started again ask only
/// the requests that were not journaled: every request ends up in the journal exactly once.
#[test]
fn a_stopped_server_generation_resumes_request_by_request() {
    let _turn = one_at_a_time();
    use common::engine::{next, until_end};
    use seedforge::engine::{Command as EngineCommand, Event};
    use seedforge::pipeline::filters::FilterSettings;
    use seedforge::pipeline::generate::GenerateSettings;

    let tmp = tempfile::tempdir().unwrap();
    let (ws, engine, mut rx) = common::engine::on_tiny_demo(tmp.path());
    let mut settings = GenerateSettings {
        per_class: 4,
        max_attempts_factor: 1,
        ..Default::default()
    };
    settings.sampling.max_new_tokens = 16;
    let mut server = RemoteSettings::new(Endpoint::new(server_url()));
    server.concurrency = 1;
    settings.set_remote(Some(Box::new(server)));
    let generate = || EngineCommand::Generate {
        settings: settings.clone(),
        filters: FilterSettings {
            label_consistency: false,
            ..FilterSettings::default()
        },
        adapter: None,
    };
    engine.send(generate()).unwrap();
    let mut first = 0;
    let first_end = loop {
        match next(&mut rx) {
            Event::ItemAdded { .. } => {
                first += 1;
                if first == 3 {
                    engine.cancel();
                }
            }
            e @ (Event::JobFinished { .. }
            | Event::JobCancelled { .. }
            | Event::JobFailed { .. }) => break e,
            _ => {}
        }
    };
    assert!(
        !matches!(first_end, Event::JobFailed { .. }),
        "{first_end:?}"
    );
    assert!((3..8).contains(&first), "{first} items before the stop");

    engine.send(generate()).unwrap();
    let events = until_end(&mut rx);
    assert!(
        matches!(events.last(), Some(Event::JobFinished { .. })),
        "{:?}",
        events.last()
    );
    let second = events
        .iter()
        .filter(|e| matches!(e, Event::ItemAdded { .. }))
        .count();
    assert_eq!(first + second, 8, "{first} then {second}");
    assert!(events.iter().any(|e| matches!(e, Event::Log(l)
        if l.contains(&format!("{first} requests of this plan are already in the journal")))));
    let w = ws.lock().unwrap();
    let mut requests: Vec<u64> = w
        .state()
        .items()
        .iter()
        .map(|it| it.original().meta["request"].as_u64().unwrap())
        .collect();
    requests.sort_unstable();
    assert_eq!(requests, (0..8).collect::<Vec<_>>(), "lost or duplicated");
    let plans: std::collections::BTreeSet<&str> = w
        .state()
        .items()
        .iter()
        .map(|it| it.original().meta["plan"].as_str().unwrap())
        .collect();
    assert_eq!(plans.len(), 1);
    drop(w);
    engine.shutdown();
}
