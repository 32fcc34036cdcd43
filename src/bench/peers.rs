//! Running the reference stacks' measurement scripts (`../shared/peers/`) from a benchmark, so
//! seedforge's figures and theirs come from the same machine in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// `$SEEDFORGE_SHARED`, else `../shared` next to the current folder (the repository layout).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("SEEDFORGE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"))
}

/// The peers' Python: `$SEEDFORGE_PEERS_PYTHON`, else the venv `setup.sh` builds.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SEEDFORGE_PEERS_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("SEEDFORGE_PEERS_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/seedforge-peers"))
        })
        .unwrap_or_default();
    home.join("venv/bin/python")
}

/// Whether `module` imports in the peers' Python.
pub fn has_module(module: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `script` (in the shared peers folder) with `args` and `--out`, returning its JSON.
/// Runs a peer script seedforge carries itself (`source`, written to a temporary file as
/// `name`) as [`run_script`] runs a shared one: `--out FILE` appended, its JSON returned.
pub fn run_embedded_script(
    name: &str,
    source: &str,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(name);
    std::fs::write(&path, source).with_context(|| format!("writing {}", path.display()))?;
    run_script_at(&path, args)
}

pub fn run_script(script: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let script_path = shared_dir().join("peers").join(script);
    anyhow::ensure!(
        script_path.is_file(),
        "{} not found (set SEEDFORGE_SHARED to the shared folder)",
        script_path.display()
    );
    run_script_at(&script_path, args)
}

fn run_script_at(script_path: &Path, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let py = python();
    anyhow::ensure!(
        py.exists(),
        "the peers' Python is not at {} (build it with {}/peers/setup.sh, or pass --no-peer)",
        py.display(),
        shared_dir().display()
    );
    let script = script_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = tempfile::NamedTempFile::new()?;
    // Long arguments (token ids) are shortened in the line; the script gets them whole.
    let shown: Vec<String> = args
        .iter()
        .map(|a| match a.char_indices().nth(40) {
            Some((i, _)) => format!("{}…", &a[..i]),
            None => a.to_string(),
        })
        .collect();
    eprintln!("seedforge: running the peer {script} {} …", shown.join(" "));
    let status = Command::new(&py)
        .arg(script_path)
        .args(args)
        .arg("--out")
        .arg(out.path())
        .status()
        .with_context(|| format!("running {}", script_path.display()))?;
    anyhow::ensure!(status.success(), "{script} failed ({status})");
    read_json(out.path())
}

/// Runs a peer script's command (`python script …` printing its JSON on stdout) and reads
/// that JSON; `script` names it in the errors.
pub fn stdout_json<T: serde::de::DeserializeOwned>(
    cmd: &mut Command,
    script: &Path,
) -> anyhow::Result<T> {
    let out = cmd
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("{}: unexpected output: {e}", script.display()))
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The first column of a TSV file with a header (SST-2's `sentence<TAB>label`).
pub fn tsv_sentences(path: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .take(n)
        .map(str::to_string)
        .collect())
}
