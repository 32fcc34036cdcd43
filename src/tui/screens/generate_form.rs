//! The Generate form's one schema: each row is a [`Setting`], which names it, says what it is,
//! shows its value, steps it with ←/→ and parses a typed value. Rows are never addressed by
//! number outside [`Setting::ALL`].

use super::generate::{GenerateState, run_time};
use crate::llm::decode::{MAX_BATCH, MAX_NEW_TOKENS};
use crate::llm::sampler::MAX_GUIDANCE;
use crate::tui::widgets::form::Field;

/// More attempts than this per class would mostly write what the filters throw away.
const MAX_ATTEMPTS_FACTOR: usize = 10;
/// More bins than seeds a class has leave most of them to chance.
const MAX_LENGTH_STRATA: usize = 10;

/// Where a log-probability row starts when it is turned on: about the 10th and 90th percentiles
/// of SmolLM2-135M's own items that passed the cheap stages on the validation rows
/// (docs/results.md).
const LOGPROB_FLOOR_START: f64 = -3.4;
const LOGPROB_CEILING_START: f64 = -1.6;
/// The rows' range: past it, a row turns off.
const LOGPROB_LOWEST: f64 = -8.0;
const LOGPROB_HIGHEST: f64 = -0.1;

/// The judge row's choices, in ←/→ order: `auto` measures the others on the seeds.
const JUDGES: [&str; 4] = ["auto", "icl", "zero-shot", "seeds-lora"];

/// A row of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    PerClass,
    Batch,
    Temperature,
    TopK,
    TopP,
    Guidance,
    MaxTokens,
    Seed,
    LabelCheck,
    MinMargin,
    NearDup,
    MinLogprob,
    MaxLogprob,
    Writer,
    AnnotateFile,
    MinConfidence,
    Template,
    Judge,
    Attempts,
    LengthStrata,
}

impl Setting {
    /// The rows, in order.
    pub const ALL: [Setting; 20] = [
        Setting::PerClass,
        Setting::Batch,
        Setting::Temperature,
        Setting::TopK,
        Setting::TopP,
        Setting::Guidance,
        Setting::MaxTokens,
        Setting::Seed,
        Setting::LabelCheck,
        Setting::MinMargin,
        Setting::NearDup,
        Setting::MinLogprob,
        Setting::MaxLogprob,
        Setting::Writer,
        Setting::AnnotateFile,
        Setting::MinConfidence,
        Setting::Template,
        Setting::Judge,
        Setting::Attempts,
        Setting::LengthStrata,
    ];

    /// The setting on row `row`.
    pub fn at(row: usize) -> Option<Setting> {
        Setting::ALL.get(row).copied()
    }

    pub fn row(self) -> usize {
        Setting::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    pub fn name(self) -> &'static str {
        match self {
            Setting::PerClass => "per class",
            Setting::Batch => "batch",
            Setting::Temperature => "temperature",
            Setting::TopK => "top-k",
            Setting::TopP => "top-p",
            Setting::Guidance => "guidance",
            Setting::MaxTokens => "max tokens",
            Setting::Seed => "seed",
            Setting::LabelCheck => "label check",
            Setting::MinMargin => "min margin",
            Setting::NearDup => "near-dup at",
            Setting::MinLogprob => "log-p floor",
            Setting::MaxLogprob => "log-p ceiling",
            Setting::Writer => "writer",
            Setting::AnnotateFile => "annotate",
            Setting::MinConfidence => "keep p ≥",
            Setting::Template => "template",
            Setting::Judge => "judge",
            Setting::Attempts => "attempts ×",
            Setting::LengthStrata => "length bins",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Setting::PerClass => "new examples per class",
            Setting::Batch => "sequences decoded together",
            Setting::Temperature => "0 = greedy; the paper uses 1.0",
            Setting::TopK => "keep the k likeliest tokens (0 = off)",
            Setting::TopP => "nucleus sampling (1.00 = off)",
            Setting::Guidance => {
                "write away from another class's prompt (1.0 = off; twice the decoding work)"
            }
            Setting::MaxTokens => "longest generation, in tokens",
            Setting::Seed => "same seed and settings give the same items",
            Setting::LabelCheck => "keep items only when the model reads them as their label",
            Setting::MinMargin => "p(label) must beat the runner-up by this",
            Setting::NearDup => "word-bigram similarity that makes a near duplicate",
            Setting::MinLogprob => {
                "reject what the writer found unlikely (mean log-p per token; garbled text)"
            }
            Setting::MaxLogprob => {
                "reject what the writer found too likely (near copies of the seeds)"
            }
            Setting::Writer => {
                "←/→: the base model, a server of config.toml, or a run's adapter \
                 (seedforge teacher trains one)"
            }
            Setting::AnnotateFile => {
                "unlabelled texts (any format init reads); A labels them into review"
            }
            Setting::MinConfidence => "an annotated text is kept when p(its label) reaches this",
            Setting::Template => {
                "t shows it; generate.jinja in the task's prompts folder overrides it"
            }
            Setting::Judge => "who checks labels; auto: the best in cross-validation on the seeds",
            Setting::Attempts => "a class short of kept items gets up to this × per class attempts",
            Setting::LengthStrata => {
                "every class keeps the seeds' length profile: its quota split over this many \
                 bins of their word counts (1 = off)"
            }
        }
    }
}

impl GenerateState {
    /// The form's rows, in [`Setting::ALL`]'s order.
    pub fn fields(&self) -> Vec<Field> {
        Setting::ALL
            .iter()
            .map(|&setting| Field {
                name: setting.name(),
                value: self.value(setting),
                hint: setting.hint(),
                disabled: setting == Setting::Template,
            })
            .collect()
    }

    fn value(&self, setting: Setting) -> String {
        let s = &self.settings;
        let f = &self.filters;
        match setting {
            Setting::PerClass => s.per_class.to_string(),
            Setting::Batch => s.batch.to_string(),
            Setting::Temperature => format!("{:.2}", s.sampling.temperature),
            Setting::TopK => s.sampling.top_k.to_string(),
            Setting::TopP => format!("{:.2}", s.sampling.top_p),
            Setting::Guidance => format!("{:.1}", s.sampling.guidance_scale),
            Setting::MaxTokens => s.sampling.max_new_tokens.to_string(),
            Setting::Seed => s.sampling.seed.to_string(),
            Setting::LabelCheck => if f.label_consistency { "on" } else { "off" }.to_string(),
            Setting::MinMargin => format!("{:.2}", f.min_margin),
            Setting::NearDup => format!("{:.0}%", f.near_dup_threshold * 100.0),
            Setting::MinLogprob => logprob_said(f.min_logprob),
            Setting::MaxLogprob => logprob_said(f.max_logprob),
            Setting::Writer => match (&s.remote, &self.writer) {
                (Some(r), _) => self.server_row(r, None),
                (None, None) => "base model".to_string(),
                (None, Some(w)) => format!(
                    "{} {}",
                    if w.teacher { "teacher" } else { "lora" },
                    run_time(&w.run)
                ),
            },
            Setting::AnnotateFile if self.annotate_file.is_empty() => "–".to_string(),
            Setting::AnnotateFile => self.annotate_file.clone(),
            Setting::MinConfidence => format!("{:.2}", self.min_confidence),
            Setting::Template => self
                .template_source
                .trim_start_matches("bundled ")
                .to_string(),
            Setting::Judge => self.judge_name().to_string(),
            Setting::Attempts => s.max_attempts_factor.to_string(),
            Setting::LengthStrata => s.length_strata.to_string(),
        }
    }

    /// The judge row's value.
    pub fn judge_name(&self) -> &'static str {
        if self.filters.select_judge {
            JUDGES[0]
        } else {
            self.filters.judge.name()
        }
    }

    fn set_judge(&mut self, name: &str) -> Result<(), String> {
        if name == JUDGES[0] {
            self.filters.select_judge = true;
            return Ok(());
        }
        self.filters.judge = name
            .parse()
            .map_err(|e: String| format!("judge: {e}, or auto"))?;
        self.filters.select_judge = false;
        Ok(())
    }

    /// ←/→ on a setting (the writer and the template are chosen elsewhere).
    pub fn adjust(&mut self, setting: Setting, up: bool) {
        let s = &mut self.settings;
        let f = &mut self.filters;
        let step = |v: usize, by: usize, min: usize| {
            if up {
                v.saturating_add(by)
            } else {
                v.saturating_sub(by).max(min)
            }
        };
        let bounded = |v: usize, by: usize, min: usize, max: usize| step(v, by, min).min(max);
        let stepf = |v: f64, by: f64, lo: f64, hi: f64| {
            let n = ((v + if up { by } else { -by }) / by).round() * by;
            n.clamp(lo, hi)
        };
        match setting {
            Setting::PerClass => s.per_class = step(s.per_class, 1, 1),
            Setting::Batch => s.batch = bounded(s.batch, 1, 1, MAX_BATCH),
            Setting::Temperature => {
                s.sampling.temperature = stepf(s.sampling.temperature as f64, 0.1, 0.0, 5.0) as f32
            }
            Setting::TopK => s.sampling.top_k = step(s.sampling.top_k, 5, 0),
            Setting::TopP => {
                s.sampling.top_p = stepf(s.sampling.top_p as f64, 0.05, 0.05, 1.0) as f32
            }
            Setting::Guidance => {
                s.sampling.guidance_scale = stepf(
                    s.sampling.guidance_scale as f64,
                    0.5,
                    1.0,
                    MAX_GUIDANCE as f64,
                ) as f32
            }
            Setting::MaxTokens => {
                s.sampling.max_new_tokens = bounded(s.sampling.max_new_tokens, 8, 1, MAX_NEW_TOKENS)
            }
            Setting::Seed => {
                s.sampling.seed = if up {
                    s.sampling.seed.saturating_add(1)
                } else {
                    s.sampling.seed.saturating_sub(1)
                }
            }
            Setting::LabelCheck => f.label_consistency = !f.label_consistency,
            Setting::MinMargin => f.min_margin = stepf(f.min_margin, 0.05, 0.0, 1.0),
            Setting::NearDup => f.near_dup_threshold = stepf(f.near_dup_threshold, 0.05, 0.05, 1.0),
            Setting::MinLogprob | Setting::MaxLogprob => {
                let mut band = f.clone();
                if setting == Setting::MinLogprob {
                    band.min_logprob = step_logprob(f.min_logprob, LOGPROB_FLOOR_START, up);
                } else {
                    band.max_logprob = step_logprob(f.max_logprob, LOGPROB_CEILING_START, up);
                }
                // A floor does not step past its ceiling, nor a ceiling below its floor.
                if band.validate().is_ok() {
                    *f = band;
                }
            }
            Setting::MinConfidence => {
                self.min_confidence = stepf(self.min_confidence, 0.05, 0.0, 1.0)
            }
            Setting::Judge => {
                let at = JUDGES
                    .iter()
                    .position(|j| *j == self.judge_name())
                    .unwrap_or(0);
                let next = if up {
                    (at + 1) % JUDGES.len()
                } else {
                    (at + JUDGES.len() - 1) % JUDGES.len()
                };
                // Every name in JUDGES parses.
                let _ = self.set_judge(JUDGES[next]);
            }
            Setting::Attempts => {
                s.max_attempts_factor = bounded(s.max_attempts_factor, 1, 1, MAX_ATTEMPTS_FACTOR)
            }
            Setting::LengthStrata => {
                s.length_strata =
                    bounded(usize::from(s.length_strata), 1, 1, MAX_LENGTH_STRATA) as u8
            }
            Setting::Writer | Setting::AnnotateFile | Setting::Template => {}
        }
    }

    /// A typed value for the setting on row `row`; the error says what is allowed.
    pub fn set_field(&mut self, row: usize, text: &str) -> Result<(), String> {
        match Setting::at(row) {
            Some(setting) => self.set(setting, text),
            None => Err(format!("the form has no row {}", row + 1)),
        }
    }

    fn set(&mut self, setting: Setting, text: &str) -> Result<(), String> {
        let t = text.trim().trim_end_matches('%');
        if t.is_empty() {
            return Ok(());
        }
        let name = setting.name();
        let int = |min: usize| -> Result<usize, String> {
            t.parse::<usize>()
                .ok()
                .filter(|v| *v >= min)
                .ok_or_else(|| format!("{name}: a whole number ≥ {min}, not `{t}`"))
        };
        let int_to = |min: usize, max: usize| -> Result<usize, String> {
            t.parse::<usize>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| format!("{name}: a whole number from {min} to {max}, not `{t}`"))
        };
        let float = |lo: f64, hi: f64| -> Result<f64, String> {
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= lo && *v <= hi)
                .ok_or_else(|| format!("{name}: a number from {lo} to {hi}, not `{t}`"))
        };
        let s = &mut self.settings;
        let f = &mut self.filters;
        match setting {
            Setting::PerClass => s.per_class = int(1)?,
            Setting::Batch => s.batch = int_to(1, MAX_BATCH)?,
            Setting::Temperature => s.sampling.temperature = float(0.0, 5.0)? as f32,
            Setting::TopK => s.sampling.top_k = int(0)?,
            Setting::TopP => s.sampling.top_p = float(0.01, 1.0)? as f32,
            Setting::Guidance => {
                s.sampling.guidance_scale = float(1.0, MAX_GUIDANCE as f64)? as f32
            }
            Setting::MaxTokens => s.sampling.max_new_tokens = int_to(1, MAX_NEW_TOKENS)?,
            Setting::Seed => {
                s.sampling.seed = t
                    .parse()
                    .map_err(|_| format!("seed: a whole number, not `{t}`"))?
            }
            Setting::LabelCheck => {
                f.label_consistency = match t.to_ascii_lowercase().as_str() {
                    "on" | "yes" | "true" | "1" => true,
                    "off" | "no" | "false" | "0" => false,
                    _ => return Err(format!("label check: on or off, not `{t}`")),
                }
            }
            Setting::MinMargin => f.min_margin = float(0.0, 1.0)?,
            Setting::NearDup => {
                let v = float(0.0, 100.0)?;
                f.near_dup_threshold = if v > 1.0 { v / 100.0 } else { v };
            }
            Setting::MinLogprob | Setting::MaxLogprob => {
                let v = if t.eq_ignore_ascii_case("off") || t == "-" || t == "–" {
                    None
                } else {
                    Some(
                        float(LOGPROB_LOWEST, LOGPROB_HIGHEST)
                            .map_err(|e| format!("{e} (or off)"))?,
                    )
                };
                let mut band = f.clone();
                match setting {
                    Setting::MinLogprob => band.min_logprob = v,
                    _ => band.max_logprob = v,
                }
                band.validate()?;
                *f = band;
            }
            Setting::AnnotateFile => self.annotate_file = text.trim().to_string(),
            Setting::MinConfidence => self.min_confidence = float(0.0, 1.0)?,
            Setting::Judge => self.set_judge(&t.to_ascii_lowercase())?,
            Setting::Attempts => s.max_attempts_factor = int_to(1, MAX_ATTEMPTS_FACTOR)?,
            Setting::LengthStrata => s.length_strata = int_to(1, MAX_LENGTH_STRATA)? as u8,
            Setting::Writer => return Err("writer: ←/→ chooses it".into()),
            Setting::Template => {
                return Err("the template is chosen by the task's prompts folder".into());
            }
        }
        Ok(())
    }
}

/// A log-probability row's value: a number, or "off".
fn logprob_said(v: Option<f64>) -> String {
    v.map_or_else(|| "off".to_string(), |v| format!("{v:.1}"))
}

/// ←/→ on a log-probability row: off turns on at `start`; steps of 0.1; past the range, off.
fn step_logprob(v: Option<f64>, start: f64, up: bool) -> Option<f64> {
    let Some(v) = v else {
        return Some(start);
    };
    let n = ((v + if up { 0.1 } else { -0.1 }) * 10.0).round() / 10.0;
    (LOGPROB_LOWEST..=LOGPROB_HIGHEST).contains(&n).then_some(n)
}
