//! From a teacher run to a saved student: the texts (the seeds with their own labels, the
//! teacher's training texts and any unlabelled texts with the teacher's probabilities, softened
//! by a temperature), training, saving.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::Student;
use super::store::{self, KIND, StudentRecord};
use super::train::{StudentConfig, Target, one_hot, tempered, train};
use crate::data::task::Task;
use crate::pipeline::classify::Prediction;

/// What the student learns from, before the teacher has read it.
#[derive(Debug, Clone, Default)]
pub struct DistilTexts {
    /// Texts the teacher trained on (other than the seeds).
    pub teacher: Vec<String>,
    /// Texts nobody labelled (the user's own data).
    pub unlabelled: Vec<String>,
}

impl DistilTexts {
    /// Drops empty texts, the seeds and repeats (a seed keeps its own label; a text given
    /// twice is learnt once).
    pub fn dedup(mut self, task: &Task) -> Self {
        let mut seen: std::collections::HashSet<String> =
            task.seeds.iter().map(|s| s.text.clone()).collect();
        let mut keep = |v: &mut Vec<String>| {
            v.retain(|t| !t.trim().is_empty() && seen.insert(t.clone()));
        };
        keep(&mut self.teacher);
        keep(&mut self.unlabelled);
        self
    }

    pub fn all(&self) -> Vec<&str> {
        self.teacher
            .iter()
            .chain(&self.unlabelled)
            .map(String::as_str)
            .collect()
    }
}

/// Settings of one distillation.
#[derive(Debug, Clone)]
pub struct DistilSettings {
    pub student: StudentConfig,
    /// Softens (> 1) or sharpens (< 1) the teacher's probabilities.
    pub temperature: f64,
    /// Train on the teacher's top label instead of its distribution.
    pub hard_labels: bool,
}

impl Default for DistilSettings {
    fn default() -> Self {
        DistilSettings {
            student: StudentConfig::default(),
            temperature: 1.0,
            hard_labels: false,
        }
    }
}

/// The training targets: each seed's own label, each taught text's teacher distribution.
pub fn targets(
    task: &Task,
    taught: &[(&str, &Prediction)],
    settings: &DistilSettings,
) -> anyhow::Result<Vec<Target>> {
    let names = task.label_names();
    let k = names.len();
    let hashing = &settings.student.hashing;
    let mut out = Vec::with_capacity(task.seeds.len() + taught.len());
    let mut seen = std::collections::HashSet::new();
    // A seed listed twice (task.toml and seeds.jsonl) is learnt once.
    for s in task.seeds.iter().filter(|s| seen.insert(s.text.as_str())) {
        let i = names.iter().position(|n| *n == s.label).ok_or_else(|| {
            anyhow::anyhow!(
                "the seed `{}` has the label `{}`, not one of the task's",
                s.text,
                s.label
            )
        })?;
        out.push(Target {
            features: hashing.features(&s.text),
            probs: one_hot(i, k),
        });
    }
    for (text, p) in taught {
        anyhow::ensure!(
            p.probs.len() == k,
            "the teacher gave {} probabilities for {k} labels",
            p.probs.len()
        );
        let probs: Vec<f64> = p.probs.iter().map(|(_, x)| *x).collect();
        let probs = if settings.hard_labels {
            let best = probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
            one_hot(best, k)
        } else {
            tempered(&probs, settings.temperature)
        };
        out.push(Target {
            features: hashing.features(text),
            probs,
        });
    }
    Ok(out)
}

/// Where the student came from, for its record.
pub struct Provenance<'a> {
    pub teacher_run: &'a Path,
    pub out: &'a Path,
}

/// Labels `texts` with `teacher`, trains the student and saves it in `from.out`. `say` hears
/// what is happening (the teacher's progress, each epoch's loss).
pub fn distil(
    task: &Task,
    texts: DistilTexts,
    teacher: &mut dyn FnMut(&[&str]) -> anyhow::Result<Vec<Prediction>>,
    settings: &DistilSettings,
    from: Provenance,
    device: &Device,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<Student> {
    let texts = texts.dedup(task);
    let all = texts.all();
    anyhow::ensure!(
        !task.seeds.is_empty() || !all.is_empty(),
        "nothing to distil from: the task has no seeds and no texts were given"
    );
    say(format!(
        "the teacher labels {} texts ({} it trained on, {} unlabelled)",
        all.len(),
        texts.teacher.len(),
        texts.unlabelled.len()
    ));
    let labelled = teacher(&all)?;
    anyhow::ensure!(
        labelled.len() == all.len(),
        "the teacher answered {} of {} texts",
        labelled.len(),
        all.len()
    );
    let taught: Vec<(&str, &Prediction)> = all.iter().copied().zip(&labelled).collect();
    let examples = targets(task, &taught, settings)?;
    let labels: Vec<String> = task.label_names().into_iter().map(String::from).collect();
    let mut final_loss = f64::NAN;
    let net = train(
        &examples,
        labels.len(),
        &settings.student,
        device,
        &mut |epoch, loss| {
            final_loss = loss;
            say(format!("epoch {epoch}: loss {loss:.4}"));
        },
    )?;
    let record = StudentRecord {
        seedforge_version: env!("CARGO_PKG_VERSION").to_string(),
        kind: KIND.to_string(),
        task_name: task.name.clone(),
        labels,
        config: settings.student.clone(),
        teacher: absolute(from.teacher_run),
        temperature: if settings.hard_labels {
            0.0
        } else {
            settings.temperature
        },
        seeds: examples.len() - taught.len(),
        teacher_texts: texts.teacher.len(),
        unlabelled_texts: texts.unlabelled.len(),
        final_loss,
    };
    store::save(from.out, &net, &record)?;
    Ok(Student::new(net, record, device.clone()))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The teacher's answers kept in a file (`--teacher-labels`), so that another distillation from
/// the same teacher (another temperature, more epochs) asks it only about texts it has not read:
/// one JSON line a text, `{"teacher": RUN, "text": …, "probs": [p per label]}`. Lines of another
/// teacher or with another number of labels are not used.
pub struct TeacherLabels {
    path: PathBuf,
    teacher: PathBuf,
    labels: Vec<String>,
    known: std::collections::HashMap<String, Vec<f64>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LabelLine {
    teacher: PathBuf,
    text: String,
    probs: Vec<f64>,
}

impl TeacherLabels {
    /// Reads `path` if it exists (a missing file is an empty cache).
    pub fn open(path: &Path, teacher_run: &Path, labels: &[String]) -> anyhow::Result<Self> {
        use anyhow::Context;
        let teacher = absolute(teacher_run);
        let mut known = std::collections::HashMap::new();
        match std::fs::read_to_string(path) {
            Ok(body) => {
                for (i, line) in body.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let l: LabelLine = serde_json::from_str(line).with_context(|| {
                        format!("{} line {}: not a teacher label", path.display(), i + 1)
                    })?;
                    if l.teacher == teacher && l.probs.len() == labels.len() {
                        known.insert(l.text, l.probs);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        Ok(TeacherLabels {
            path: path.to_path_buf(),
            teacher,
            labels: labels.to_vec(),
            known,
        })
    }

    /// Texts whose answer the file already holds.
    pub fn known(&self) -> usize {
        self.known.len()
    }

    /// The teacher's answer for each of `texts`: from the file, or from `teacher` (asked once,
    /// for the texts the file lacks, whose answers are then appended to it).
    pub fn label(
        &mut self,
        texts: &[&str],
        teacher: &mut dyn FnMut(&[&str]) -> anyhow::Result<Vec<Prediction>>,
    ) -> anyhow::Result<Vec<Prediction>> {
        use anyhow::Context;
        use std::io::Write;
        let mut missing: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| !self.known.contains_key(*t))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let answers = teacher(&missing)?;
            anyhow::ensure!(
                answers.len() == missing.len(),
                "the teacher answered {} of {} texts",
                answers.len(),
                missing.len()
            );
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .with_context(|| format!("opening {}", self.path.display()))?;
            let mut body = String::new();
            for (text, p) in missing.iter().zip(&answers) {
                let probs: Vec<f64> = p.probs.iter().map(|(_, x)| *x).collect();
                anyhow::ensure!(
                    probs.len() == self.labels.len(),
                    "the teacher gave {} probabilities for {} labels",
                    probs.len(),
                    self.labels.len()
                );
                body.push_str(&serde_json::to_string(&LabelLine {
                    teacher: self.teacher.clone(),
                    text: text.to_string(),
                    probs: probs.clone(),
                })?);
                body.push('\n');
                self.known.insert(text.to_string(), probs);
            }
            file.write_all(body.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", self.path.display()))?;
        }
        Ok(texts
            .iter()
            .map(|t| cached_prediction(&self.labels, &self.known[*t]))
            .collect())
    }
}

/// A [`Prediction`] from stored probabilities (their logarithms as the student's logits).
fn cached_prediction(labels: &[String], probs: &[f64]) -> Prediction {
    let logits: Vec<f32> = probs.iter().map(|p| p.max(1e-30).ln() as f32).collect();
    super::prediction(labels, &logits)
}
