//! Shared by the integration tests: where the real model and the shared material are.
#![allow(dead_code)]

pub mod engine;
pub mod llama_server;
pub mod tiny;
pub mod tmux;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

/// `../shared` beside the repository (datasets, fixtures, peers).
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn fixture(name: &str) -> serde_json::Value {
    let path = shared_dir().join("fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the shared fixtures must sit beside the repo)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

static FETCH: Mutex<()> = Mutex::new(());

/// The real default model: `$SEEDFORGE_MODEL`, else the cached copy, fetched on first use
/// exactly as a user's first run fetches it.
pub fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SEEDFORGE_MODEL") {
        return PathBuf::from(p);
    }
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    seedforge::llm::fetch::ensure_default_model(&mut |e| eprintln!("fetch: {e:?}")).unwrap_or_else(
        |e| panic!("the real model is needed for this test and could not be fetched: {e}"),
    )
}

/// Next-token logits after each prompt, one row per prompt.
pub fn last_logits(
    m: &seedforge::llm::model::Llama,
    tok: &seedforge::llm::tokenizer::TextTokenizer,
    prompts: &[&str],
) -> Vec<Vec<f32>> {
    use seedforge::llm::model::{StepLayout, tokens_tensor};
    prompts
        .iter()
        .map(|p| {
            let ids = tok.encode(p).unwrap();
            let layout = StepLayout::for_prompts(&[ids.len()]);
            seedforge::llm::greedy::row_logits(m.forward_last(
                tokens_tensor(std::slice::from_ref(&ids), 0, &m.device()),
                &layout,
                None,
            ))
            .unwrap()
        })
        .collect()
}

/// The peers' Python (`$SEEDFORGE_PEERS_PYTHON`, else the venv in `$SEEDFORGE_PEERS_HOME`, default
/// `~/.cache/seedforge-peers`), once it imports every one of `modules`. A test that needs it fails
/// here, naming the commands that install what is missing; it never passes without checking.
pub fn peer_python(modules: &[&str]) -> PathBuf {
    let py = seedforge::bench::peers::python();
    let setup = shared_dir().join("peers/setup.sh");
    assert!(
        py.is_file(),
        "the peers' Python {} is missing: run `bash {}` (it builds the venv with torch, \
         transformers and peft), then `{} -m pip install datasets`",
        py.display(),
        setup.display(),
        py.display()
    );
    let missing: Vec<&str> = modules
        .iter()
        .copied()
        .filter(|m| {
            !std::process::Command::new(&py)
                .args(["-c", &format!("import {m}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the peers' Python {} cannot import {}: run `bash {}`, and `{} -m pip install datasets` \
         for datasets",
        py.display(),
        missing.join(", "),
        setup.display(),
        py.display()
    );
    py
}

/// Largest absolute difference between two sets of logit rows.
pub fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The seedforge binary, reading no user configuration.
pub fn seedforge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seedforge"));
    c.env(
        "SEEDFORGE_CONFIG_DIR",
        std::env::temp_dir().join("seedforge-no-config"),
    );
    c
}

/// `seedforge init` of an SST-2 workspace at `ws`: 4 seeds a class drawn with seed 0 from rows
/// of at least 6 words, the task described as sentiment reviews (what the real-model tests
/// classify with).
pub fn sst2_workspace(ws: &std::path::Path) {
    let train = shared_dir().join("datasets/sst2/train.tsv");
    let mut c = seedforge();
    c.arg("--workspace")
        .arg(ws)
        .arg("init")
        .arg("--from")
        .arg(train);
    c.args(["--label-map", "0=negative,1=positive", "--per-class", "4"]);
    c.args([
        "--seed",
        "0",
        "--min-words",
        "6",
        "--description",
        "sentiment",
    ]);
    c.args(["--input-field", "Review", "--label-field", "Sentiment"]);
    let o = run(c);
    assert!(o.status.success(), "seedforge init of {}", ws.display());
}

/// Runs `c`, showing its stderr in the test's output.
pub fn run(mut c: Command) -> Output {
    let o = c.output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A JSONL file's objects.
pub fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
