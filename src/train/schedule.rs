//! Learning-rate schedules: linear warm-up from zero, then cosine or linear decay (or a constant
//! rate), as a pure function of the optimizer step.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    #[default]
    Cosine,
    Linear,
    Constant,
}

impl FromStr for Decay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cosine" => Ok(Decay::Cosine),
            "linear" => Ok(Decay::Linear),
            "constant" => Ok(Decay::Constant),
            other => Err(format!(
                "unknown schedule '{other}' (cosine, linear or constant)"
            )),
        }
    }
}

impl fmt::Display for Decay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decay::Cosine => "cosine",
            Decay::Linear => "linear",
            Decay::Constant => "constant",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub peak_lr: f64,
    /// Steps of linear warm-up (the first step runs at `peak_lr / (warmup + 1)`).
    pub warmup_steps: usize,
    /// Optimizer steps in the whole run; decay reaches `min_lr` after the last one.
    pub total_steps: usize,
    pub decay: Decay,
    pub min_lr: f64,
}

impl Schedule {
    /// The learning rate of optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps);
        if decay_steps == 0 {
            return self.peak_lr;
        }
        // Progress through the decay: 0 at its first step, 1 after its last.
        let t = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let span = self.peak_lr - self.min_lr;
        match self.decay {
            Decay::Constant => self.peak_lr,
            Decay::Linear => self.min_lr + span * (1.0 - t),
            Decay::Cosine => self.min_lr + span * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()),
        }
    }
}

/// Warm-up steps for a fraction of the run (rounded, at least one when the fraction is positive
/// and there is more than one step).
pub fn warmup_steps(fraction: f64, total_steps: usize) -> usize {
    if fraction <= 0.0 || total_steps <= 1 {
        return 0;
    }
    ((fraction * total_steps as f64).round() as usize).clamp(1, total_steps - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn warmup_rises_linearly_then_cosine_falls_to_min() {
        let s = Schedule {
            peak_lr: 1.0,
            warmup_steps: 3,
            total_steps: 13,
            decay: Decay::Cosine,
            min_lr: 0.0,
        };
        assert!(close(s.lr(0), 0.25));
        assert!(close(s.lr(1), 0.5));
        assert!(close(s.lr(2), 0.75));
        assert!(close(s.lr(3), 1.0));
        // Halfway through the 10 decay steps: cos(π/2) → half.
        assert!(close(s.lr(8), 0.5));
        assert!(s.lr(12) < 0.03 && s.lr(12) > 0.0);
        assert!(close(s.lr(13), 0.0));
        assert!(close(s.lr(100), 0.0));
        for k in 3..13 {
            assert!(s.lr(k + 1) < s.lr(k));
        }
    }

    #[test]
    fn linear_and_constant_decay() {
        let lin = Schedule {
            peak_lr: 2.0,
            warmup_steps: 0,
            total_steps: 4,
            decay: Decay::Linear,
            min_lr: 0.4,
        };
        let got: Vec<f64> = (0..5).map(|k| lin.lr(k)).collect();
        let want = [2.0, 1.6, 1.2, 0.8, 0.4];
        assert!(got.iter().zip(want).all(|(a, b)| close(*a, b)), "{got:?}");
        let c = Schedule {
            decay: Decay::Constant,
            ..lin
        };
        assert!((0..6).all(|k| close(c.lr(k), 2.0)));
    }

    #[test]
    fn warmup_fraction_rounds_and_stays_inside_the_run() {
        assert_eq!(warmup_steps(0.1, 100), 10);
        assert_eq!(warmup_steps(0.1, 3), 1);
        assert_eq!(warmup_steps(0.0, 100), 0);
        assert_eq!(warmup_steps(0.9, 2), 1);
        assert_eq!(warmup_steps(0.5, 1), 0);
        assert_eq!("linear".parse::<Decay>().unwrap(), Decay::Linear);
        assert!("x".parse::<Decay>().is_err());
    }
}
