//! A training run's checkpoint: everything the loop needs to go on exactly where it was, in
//! `<run>/checkpoint/`.
//!
//! - `data.json`: the run's examples as the trainer sees them (encoded, split into training and
//!   validation, weighted), written once when the run starts, so a resumed run trains on the
//!   same examples whatever happened to the workspace or the files since.
//! - `tensors.<gen>.safetensors`: the adapter factors now and those of the best epoch so far.
//! - `optimizer.<gen>.bpk`: AdamW's moments and step counts (Burn's optimizer record, burnpack).
//! - `state.json`, the manifest, written last: the loop's counters ([`Progress`]: step, epoch,
//!   the batch-order stream, early stopping, the best epoch and its validation loss), each
//!   adapter's parameter ids and dropout stream, how far `metrics.jsonl` had got, and the length
//!   and SHA-256 of every file above.
//!
//! Each file is replaced atomically (temp file, fsync, rename) and the tensor and optimizer
//! files carry a generation number, so the manifest always names a complete set: a crash while
//! writing generation 8 leaves the manifest of generation 7 and its files. Files of older
//! generations are removed once the new manifest is down. When the run ends the manifest says
//! so ([`Manifest::finished`]) and the bulky files go.
//!
//! The types here are plain data; [`Checkpoints`] and [`load`] are the only I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::data::Encoded;
use super::metrics::StopReason;
use super::trainer::TrainData;
use crate::data::atomic::write_atomic_bytes;

pub const DIR: &str = "checkpoint";
pub const MANIFEST: &str = "state.json";
pub const DATA_FILE: &str = "data.json";
const FORMAT: u32 = 1;

/// The examples of a run as the trainer takes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    pub train: Vec<Encoded>,
    pub val: Vec<Encoded>,
    pub label_tokens: Vec<Vec<u32>>,
    pub pad: u32,
    pub weights: Vec<f32>,
    pub soft: Vec<Option<Vec<f32>>>,
}

impl RunData {
    pub fn as_train_data(&self) -> TrainData<'_> {
        TrainData {
            train: &self.train,
            val: &self.val,
            label_tokens: &self.label_tokens,
            pad: self.pad,
            weights: &self.weights,
            soft: &self.soft,
        }
    }
}

/// The best epoch so far (its adapter is in the tensor file).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub epoch: usize,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
}

/// Where the training loop stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch in progress (or the next one, when `steps_in_epoch` is 0).
    pub epoch: usize,
    /// Optimizer steps of `epoch` already taken.
    pub steps_in_epoch: usize,
    /// Optimizer steps taken in all.
    pub step: usize,
    /// Epochs finished and evaluated.
    pub epochs_done: usize,
    /// The batch-order stream as it was before `epoch` drew its batches.
    pub epoch_rng: [u64; 4],
    /// Target-weighted loss sum and target count of `epoch` so far.
    pub epoch_loss: f64,
    pub epoch_targets: usize,
    /// Early stopping: the best (epoch, validation loss) and the epochs since.
    pub early_best: Option<(usize, f64)>,
    pub epochs_without_improvement: usize,
    /// Early stopping has ended the run: nothing is left to train.
    pub early_stopped: bool,
    pub best: Option<Best>,
    /// Seconds of training so far (the resumed run's clock goes on from here).
    pub elapsed_s: f64,
}

/// One adapter (layer and target, in `lora::adapters` order): its factors, the ids under which
/// the optimizer keeps their state, and its dropout stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterState {
    pub a_id: u64,
    pub b_id: u64,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub noise: [u64; 4],
}

/// A checkpoint in memory: what the trainer hands over and takes back.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub progress: Progress,
    pub adapters: Vec<AdapterState>,
    /// The best epoch's factors (`a`, `b` per adapter), when there is one.
    pub best: Option<Vec<(Vec<f32>, Vec<f32>)>>,
    /// The optimizer record (burnpack bytes).
    pub optimizer: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AdapterMeta {
    a_id: u64,
    b_id: u64,
    noise: [u64; 4],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileSum {
    name: String,
    bytes: u64,
    sha256: String,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    format: u32,
    generation: u64,
    /// Set when the run has ended (completed or stopped early); nothing is left to resume.
    #[serde(default)]
    pub finished: Option<StopReason>,
    pub progress: Progress,
    /// Length of `metrics.jsonl` when the checkpoint was taken: a resumed run cuts it there.
    pub metrics_bytes: u64,
    adapters: Vec<AdapterMeta>,
    files: Vec<FileSum>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sum(name: &str, bytes: &[u8]) -> FileSum {
    FileSum {
        name: name.to_string(),
        bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    }
}

fn tensors_name(generation: u64) -> String {
    format!("tensors.{generation}.safetensors")
}

fn optimizer_name(generation: u64) -> String {
    format!("optimizer.{generation}.bpk")
}

/// The safetensors bytes of the current and best factors.
fn tensors_bytes(ck: &Checkpoint) -> anyhow::Result<Vec<u8>> {
    let mut flat: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (i, a) in ck.adapters.iter().enumerate() {
        flat.insert(format!("current.{i}.a"), le(&a.a));
        flat.insert(format!("current.{i}.b"), le(&a.b));
    }
    for (i, (a, b)) in ck.best.iter().flatten().enumerate() {
        flat.insert(format!("best.{i}.a"), le(a));
        flat.insert(format!("best.{i}.b"), le(b));
    }
    let views = flat
        .iter()
        .map(|(k, data)| {
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![data.len() / 4],
                data,
            )
            .map(|v| (k.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// Writes the checkpoints of one run: [`Checkpoints::start`] once, then [`Checkpoints::save`]
/// as often as the trainer asks and [`Checkpoints::finish`] when the run has ended.
pub struct Checkpoints {
    dir: PathBuf,
    generation: u64,
    data: FileSum,
    /// The progress of the last checkpoint written (what the finished manifest keeps).
    last: Option<Progress>,
}

impl Checkpoints {
    /// A new run's checkpoint folder with its data (any earlier checkpoint there is replaced).
    pub fn start(run: &Path, data: &RunData) -> anyhow::Result<Self> {
        let dir = run.join(DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        let bytes = serde_json::to_vec(data)?;
        let path = dir.join(DATA_FILE);
        write_atomic_bytes(&path, &bytes)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        Ok(Checkpoints {
            dir,
            generation: 0,
            data: sum(DATA_FILE, &bytes),
            last: None,
        })
    }

    /// Goes on writing the checkpoints of a run resumed from `loaded`.
    pub fn resume(run: &Path, loaded: &Loaded) -> Self {
        Checkpoints {
            dir: run.join(DIR),
            generation: loaded.manifest.generation,
            data: loaded.data_sum.clone(),
            last: Some(loaded.manifest.progress.clone()),
        }
    }

    /// Writes `ck` as the next generation (its files, then the manifest), then removes the files
    /// of earlier generations.
    pub fn save(&mut self, ck: &Checkpoint, metrics_bytes: u64) -> anyhow::Result<()> {
        let generation = self.generation + 1;
        let tensors = tensors_bytes(ck)?;
        let tname = tensors_name(generation);
        let oname = optimizer_name(generation);
        for (name, bytes) in [(&tname, &tensors), (&oname, &ck.optimizer)] {
            let path = self.dir.join(name);
            write_atomic_bytes(&path, bytes)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        let manifest = Manifest {
            format: FORMAT,
            generation,
            finished: None,
            progress: ck.progress.clone(),
            metrics_bytes,
            adapters: ck
                .adapters
                .iter()
                .map(|a| AdapterMeta {
                    a_id: a.a_id,
                    b_id: a.b_id,
                    noise: a.noise,
                })
                .collect(),
            files: vec![
                self.data.clone(),
                sum(&tname, &tensors),
                sum(&oname, &ck.optimizer),
            ],
        };
        self.write_manifest(&manifest)?;
        self.generation = generation;
        self.last = Some(ck.progress.clone());
        self.remove_stale(&[DATA_FILE, &tname, &oname]);
        Ok(())
    }

    /// Marks the run ended for `reason` (nothing to resume) and removes the bulky files.
    pub fn finish(&mut self, reason: StopReason) -> anyhow::Result<()> {
        let Some(progress) = self.last.clone() else {
            anyhow::bail!("no checkpoint was written, so there is none to mark finished");
        };
        let manifest = Manifest {
            format: FORMAT,
            generation: self.generation + 1,
            finished: Some(reason),
            progress,
            metrics_bytes: 0,
            adapters: Vec::new(),
            files: Vec::new(),
        };
        self.write_manifest(&manifest)?;
        self.generation += 1;
        self.remove_stale(&[]);
        Ok(())
    }

    fn write_manifest(&self, manifest: &Manifest) -> anyhow::Result<()> {
        let path = self.dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(manifest)? + "\n";
        write_atomic_bytes(&path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    }

    /// Best effort: a file left behind costs disk, not correctness (the manifest names the
    /// files that count).
    fn remove_stale(&self, keep: &[&str]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name != MANIFEST && !keep.contains(&name.as_str()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// What a run folder's checkpoint says about the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// No checkpoint (a run from before checkpoints, or one that ended before its first).
    Absent,
    /// The run has ended.
    Finished(StopReason),
    /// The run can go on from here.
    Resumable(Progress),
    /// The manifest cannot be read (the message names the file and why).
    Unreadable(String),
}

fn read_manifest(run: &Path) -> anyhow::Result<Option<Manifest>> {
    let path = run.join(DIR).join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    };
    let m: Manifest = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a readable checkpoint manifest ({e}); the checkpoint is corrupt",
            path.display()
        )
    })?;
    anyhow::ensure!(
        m.format == FORMAT,
        "{}: checkpoint format {} (this seedforge reads format {FORMAT})",
        path.display(),
        m.format
    );
    Ok(Some(m))
}

/// The run's checkpoint status from its manifest alone (cheap: for listing runs).
pub fn status(run: &Path) -> Status {
    match read_manifest(run) {
        Ok(None) => Status::Absent,
        Ok(Some(m)) => match m.finished {
            Some(r) => Status::Finished(r),
            None => Status::Resumable(m.progress),
        },
        Err(e) => Status::Unreadable(e.to_string()),
    }
}

/// A checkpoint read back and checked.
#[derive(Debug)]
pub struct Loaded {
    pub manifest: Manifest,
    pub data: RunData,
    pub checkpoint: Checkpoint,
    data_sum: FileSum,
}

/// Reads the checkpoint of `run`, checking every file against the manifest (length and
/// SHA-256). Errors name the file and what is wrong with it; `Ok(None)` when there is no
/// checkpoint, and an error when the run has finished.
pub fn load(run: &Path) -> anyhow::Result<Option<Loaded>> {
    let Some(manifest) = read_manifest(run)? else {
        return Ok(None);
    };
    let dir = run.join(DIR);
    if let Some(reason) = manifest.finished {
        anyhow::bail!(
            "{} has finished ({}, {} steps in {} epochs); there is nothing to resume",
            run.display(),
            reason_text(reason),
            manifest.progress.step,
            manifest.progress.epochs_done
        );
    }
    let mut files: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for f in &manifest.files {
        let path = dir.join(&f.name);
        let bytes = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!("{}: {e} (the checkpoint is incomplete)", path.display())
        })?;
        anyhow::ensure!(
            bytes.len() as u64 == f.bytes,
            "{}: {} bytes where the checkpoint manifest says {} (cut short or overwritten); the \
             checkpoint is corrupt",
            path.display(),
            bytes.len(),
            f.bytes
        );
        anyhow::ensure!(
            sha256_hex(&bytes) == f.sha256,
            "{}: its SHA-256 differs from the checkpoint manifest's; the checkpoint is corrupt",
            path.display()
        );
        files.insert(f.name.as_str(), bytes);
    }
    let take = |name: &str| {
        files.get(name).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the manifest names no {name}; the checkpoint is corrupt",
                dir.join(MANIFEST).display()
            )
        })
    };
    let data_path = dir.join(DATA_FILE);
    let data: RunData = serde_json::from_slice(take(DATA_FILE)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", data_path.display()))?;
    let tname = tensors_name(manifest.generation);
    let tpath = dir.join(&tname);
    let tbytes = take(&tname)?;
    let st = safetensors::SafeTensors::deserialize(tbytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", tpath.display()))?;
    let read = |key: String| -> anyhow::Result<Option<Vec<f32>>> {
        match st.tensor(&key) {
            Ok(v) => Ok(Some(
                v.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )),
            Err(safetensors::SafeTensorError::TensorNotFound(_)) => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: '{key}': {e}", tpath.display())),
        }
    };
    let missing = |key: &str| anyhow::anyhow!("{}: '{key}' is missing", tpath.display());
    let mut adapters = Vec::with_capacity(manifest.adapters.len());
    let mut best = Vec::new();
    for (i, m) in manifest.adapters.iter().enumerate() {
        let a = read(format!("current.{i}.a"))?.ok_or_else(|| missing("current.a"))?;
        let b = read(format!("current.{i}.b"))?.ok_or_else(|| missing("current.b"))?;
        adapters.push(AdapterState {
            a_id: m.a_id,
            b_id: m.b_id,
            a,
            b,
            noise: m.noise,
        });
        if let (Some(a), Some(b)) = (read(format!("best.{i}.a"))?, read(format!("best.{i}.b"))?) {
            best.push((a, b));
        }
    }
    let best = match (manifest.progress.best.is_some(), best.len()) {
        (false, _) => None,
        (true, n) if n == adapters.len() => Some(best),
        (true, n) => anyhow::bail!(
            "{}: the best epoch's factors of {n} adapters, {} expected",
            tpath.display(),
            adapters.len()
        ),
    };
    let oname = optimizer_name(manifest.generation);
    let optimizer = take(&oname)?.clone();
    let data_sum = manifest
        .files
        .iter()
        .find(|f| f.name == DATA_FILE)
        .cloned()
        .ok_or_else(|| missing(DATA_FILE))?;
    Ok(Some(Loaded {
        checkpoint: Checkpoint {
            progress: manifest.progress.clone(),
            adapters,
            best,
            optimizer,
        },
        manifest,
        data,
        data_sum,
    }))
}

pub fn reason_text(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Completed => "completed",
        StopReason::EarlyStopped => "stopped early",
        StopReason::Stopped => "stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress() -> Progress {
        Progress {
            epoch: 2,
            steps_in_epoch: 1,
            step: 7,
            epochs_done: 2,
            epoch_rng: [1, 2, 3, u64::MAX],
            epoch_loss: 0.1 + 0.2,
            epoch_targets: 12,
            early_best: Some((1, 0.432_198_765_432_1)),
            epochs_without_improvement: 1,
            early_stopped: false,
            best: Some(Best {
                epoch: 1,
                val_loss: Some(0.432_198_765_432_1),
                val_accuracy: None,
            }),
            elapsed_s: 12.5,
        }
    }

    fn checkpoint(x: f32) -> Checkpoint {
        Checkpoint {
            progress: progress(),
            adapters: vec![
                AdapterState {
                    a_id: 11,
                    b_id: 12,
                    a: vec![x, -1.5, f32::MIN_POSITIVE],
                    b: vec![0.0; 4],
                    noise: [9, 8, 7, 6],
                },
                AdapterState {
                    a_id: 13,
                    b_id: 14,
                    a: vec![3.0],
                    b: vec![1e-30, 2.0],
                    noise: [5, 4, 3, 2],
                },
            ],
            best: Some(vec![
                (vec![1.0, 2.0, 3.0], vec![4.0; 4]),
                (vec![5.0], vec![6.0; 2]),
            ]),
            optimizer: vec![1, 2, 3, 4, 5],
        }
    }

    fn data() -> RunData {
        let e = Encoded {
            prompt: vec![3, 4],
            target: vec![50],
            label: 0,
            truncated: false,
        };
        RunData {
            train: vec![e.clone(), e.clone()],
            val: vec![e],
            label_tokens: vec![vec![50], vec![51]],
            pad: 0,
            weights: vec![1.0, 0.5],
            soft: vec![None, Some(vec![0.25, 0.75])],
        }
    }

    fn names(run: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(run.join(DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_checkpoint_round_trips_exactly_and_keeps_one_generation() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        assert_eq!(status(run), Status::Absent);
        assert!(load(run).unwrap().is_none());
        let mut w = Checkpoints::start(run, &data()).unwrap();
        w.save(&checkpoint(0.1), 100).unwrap();
        w.save(&checkpoint(0.2), 250).unwrap();
        let loaded = load(run).unwrap().unwrap();
        assert_eq!(loaded.checkpoint, checkpoint(0.2));
        assert_eq!(loaded.data, data());
        assert_eq!(loaded.manifest.metrics_bytes, 250);
        assert_eq!(status(run), Status::Resumable(progress()));
        assert_eq!(
            names(run),
            [
                "data.json",
                "optimizer.2.bpk",
                "state.json",
                "tensors.2.safetensors"
            ]
        );
        // A resumed run goes on with the next generation.
        let mut w = Checkpoints::resume(run, &loaded);
        w.save(&checkpoint(0.3), 300).unwrap();
        assert_eq!(load(run).unwrap().unwrap().checkpoint.adapters[0].a[0], 0.3);
        w.finish(StopReason::Completed).unwrap();
        assert_eq!(status(run), Status::Finished(StopReason::Completed));
        assert_eq!(names(run), ["state.json"]);
        let err = load(run).unwrap_err().to_string();
        assert!(err.contains("has finished (completed"), "{err}");
    }

    #[test]
    fn a_damaged_file_is_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let mut w = Checkpoints::start(run, &data()).unwrap();
        w.save(&checkpoint(0.1), 10).unwrap();
        let tensors = run.join(DIR).join("tensors.1.safetensors");
        let bytes = std::fs::read(&tensors).unwrap();
        // Cut short.
        std::fs::write(&tensors, &bytes[..bytes.len() / 2]).unwrap();
        let err = load(run).unwrap_err().to_string();
        assert!(err.contains("tensors.1.safetensors"), "{err}");
        assert!(err.contains("cut short"), "{err}");
        // Same length, one byte changed.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&tensors, &flipped).unwrap();
        let err = load(run).unwrap_err().to_string();
        assert!(
            err.contains("tensors.1.safetensors") && err.contains("SHA-256"),
            "{err}"
        );
        // Missing.
        std::fs::remove_file(&tensors).unwrap();
        let err = load(run).unwrap_err().to_string();
        assert!(
            err.contains("tensors.1.safetensors") && err.contains("incomplete"),
            "{err}"
        );
        // A torn manifest.
        let manifest = run.join(DIR).join(MANIFEST);
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, &text[..text.len() / 3]).unwrap();
        let err = load(run).unwrap_err().to_string();
        assert!(
            err.contains("state.json") && err.contains("corrupt"),
            "{err}"
        );
        assert!(matches!(status(run), Status::Unreadable(m) if m.contains("state.json")));
    }
}
