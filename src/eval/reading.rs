//! How a LoRA run's label scores are read, decided in one place from what the run was trained
//! on, for every command and screen that classifies with a run: `eval`, `train --eval`, the
//! workbench's evaluations, the experiment and `predict`.
//!
//! A run trained on text the model invented and labelled learns the judge's lean as a prior
//! over the labels. Dividing by the run's label distribution on content-free inputs takes a
//! prior out; dividing by all of it over-corrects where the classes are not balanced (TREC).
//! Measured on validation rows carved from the training files, three sampling seeds
//! (docs/results.md): half strength (the square root of that distribution) for runs with
//! generated examples; no calibration for runs on real text alone (seeds, annotated pool).

use std::path::Path;

use super::report::Method;
use super::run::EvalOptions;
use crate::pipeline::classify::ClassifierOptions;
use crate::train::run::{TrainedOn, read_trained_on};

/// The share of the content-free prior divided out of a run trained on generated examples.
pub const GENERATED_STRENGTH: f64 = 0.5;

/// Whether and how strongly to calibrate a run's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub calibrate: bool,
    pub strength: f64,
}

impl Reading {
    pub const RAW: Reading = Reading {
        calibrate: false,
        strength: 1.0,
    };

    /// The reading for a run that trained on `trained` (`None`: an adapter from elsewhere,
    /// read as it is).
    pub fn for_trained(trained: Option<&TrainedOn>) -> Reading {
        let generated = trained.map_or(0, |t| {
            // Runs saved before the split was recorded: their extra items were judged.
            t.generated_examples.unwrap_or(t.extra_examples)
        });
        if generated > 0 {
            Reading {
                calibrate: true,
                strength: GENERATED_STRENGTH,
            }
        } else {
            Reading::RAW
        }
    }

    /// How an evaluation table names it: `` / `calibrated` / `calibrated ×0.5`.
    pub fn describe(calibrated: bool, strength: Option<f64>) -> String {
        match (calibrated, strength) {
            (false, _) => String::new(),
            (true, Some(s)) if (s - 1.0).abs() > 1e-9 => format!("calibrated ×{s}"),
            (true, _) => "calibrated".into(),
        }
    }
}

/// The reading of `run`: a run trained on from another (staged) is read as the first stage
/// when it added no generated items of its own — the lean came from there. A run folder with no
/// `config.json` (an adapter from elsewhere) is read raw; one whose `config.json` cannot be read
/// is an error naming it, since guessing would change how the adapter is read.
pub fn reading_of_run(run: &Path) -> anyhow::Result<Reading> {
    let mut trained = read_trained_on(run)?;
    // A chain of staged runs is followed a few links at most (a loop of folders ends too).
    for _ in 0..8 {
        let here = Reading::for_trained(trained.as_ref());
        match trained.as_ref().and_then(|t| t.started_from.as_deref()) {
            Some(first) if here == Reading::RAW => trained = read_trained_on(first)?,
            _ => return Ok(here),
        }
    }
    Ok(Reading::for_trained(trained.as_ref()))
}

/// The classifier options for reading `run`'s adapter (zero-shot prompt, as it was trained).
pub fn options_for_run(run: &Path) -> anyhow::Result<ClassifierOptions> {
    let r = reading_of_run(run)?;
    Ok(ClassifierOptions {
        calibrate: r.calibrate,
        calibration_strength: r.strength,
        ..ClassifierOptions::default()
    })
}

/// The evaluation options for `run`'s adapter.
pub fn eval_options_for_run(run: &Path) -> anyhow::Result<EvalOptions> {
    let r = reading_of_run(run)?;
    Ok(EvalOptions {
        calibrate: r.calibrate,
        calibration_strength: r.strength,
        ..EvalOptions::new(Method::Lora)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(extra: usize, generated: Option<usize>) -> TrainedOn {
        TrainedOn {
            real_examples: 8,
            extra_examples: extra,
            label_counts: Vec::new(),
            generated_examples: generated,
            started_from: None,
            train: Default::default(),
        }
    }

    #[test]
    fn generated_examples_are_read_at_half_strength_real_text_raw() {
        let half = Reading {
            calibrate: true,
            strength: GENERATED_STRENGTH,
        };
        assert_eq!(Reading::for_trained(Some(&run(10, Some(3)))), half);
        assert_eq!(Reading::for_trained(Some(&run(10, Some(0)))), Reading::RAW);
        assert_eq!(Reading::for_trained(Some(&run(0, Some(0)))), Reading::RAW);
        // Recorded before the split: judged items, read as generated ones.
        assert_eq!(Reading::for_trained(Some(&run(10, None))), half);
        assert_eq!(Reading::for_trained(Some(&run(0, None))), Reading::RAW);
        assert_eq!(Reading::for_trained(None), Reading::RAW);
    }

    #[test]
    fn a_staged_run_is_read_as_the_run_it_started_from() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |name: &str, extra: usize, generated: usize, from: Option<&str>| {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let mut c = serde_json::json!({
                "real_examples": 8, "extra_examples": extra, "generated_examples": generated
            });
            if let Some(f) = from {
                c["started_from"] = tmp.path().join(f).display().to_string().into();
            }
            std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
            dir
        };
        let half = Reading {
            calibrate: true,
            strength: GENERATED_STRENGTH,
        };
        write("synthetic", 20, 20, None);
        write("annotated", 20, 0, None);
        let staged = write("staged", 0, 0, Some("synthetic"));
        let twice = write("twice", 0, 0, Some("staged"));
        let on_real = write("on-real", 0, 0, Some("annotated"));
        let looped = write("loop", 0, 0, Some("loop"));
        let read = |dir: &Path| reading_of_run(dir).unwrap();
        assert_eq!(read(&staged), half);
        assert_eq!(read(&twice), half);
        assert_eq!(read(&on_real), Reading::RAW);
        assert_eq!(read(&looped), Reading::RAW);
        assert_eq!(read(&tmp.path().join("synthetic")), half);
        // An adapter from elsewhere (no config.json) is read raw.
        let bare = tmp.path().join("bare");
        std::fs::create_dir_all(&bare).unwrap();
        assert_eq!(read(&bare), Reading::RAW);
    }

    #[test]
    fn an_unreadable_config_is_an_error_naming_it_not_a_raw_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let broken = tmp.path().join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(
            broken.join("config.json"),
            "{\"real_examples\": 8, \"extra_ex",
        )
        .unwrap();
        let err = format!("{:#}", reading_of_run(&broken).unwrap_err());
        assert!(err.contains("config.json"), "{err}");
        // A staged run whose first stage is broken: the same, not the first link's reading.
        let staged = tmp.path().join("staged");
        std::fs::create_dir_all(&staged).unwrap();
        let c = serde_json::json!({
            "real_examples": 8, "extra_examples": 0, "generated_examples": 0,
            "started_from": broken.display().to_string(),
        });
        std::fs::write(staged.join("config.json"), c.to_string()).unwrap();
        assert!(reading_of_run(&staged).is_err());
        assert!(eval_options_for_run(&staged).is_err());
        assert!(options_for_run(&broken).is_err());
    }

    #[test]
    fn the_reading_is_named_in_tables() {
        assert_eq!(Reading::describe(false, Some(0.5)), "");
        assert_eq!(Reading::describe(true, None), "calibrated");
        assert_eq!(Reading::describe(true, Some(1.0)), "calibrated");
        assert_eq!(Reading::describe(true, Some(0.5)), "calibrated ×0.5");
    }
}
