//! The methods an experiment compares.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arm {
    /// The base model, only the input in the prompt.
    ZeroShot,
    /// The seeds as demonstrations, labels alternating.
    Icl,
    /// As `Icl`, with contextual calibration of the label scores.
    IclCalibrated,
    /// LoRA on the seeds alone.
    LoraReal,
    /// LoRA on the seeds + the generated items the filters kept.
    LoraSynthetic,
    /// The same adapter read without contextual calibration (the calibration's ablation).
    LoraSyntheticUncalibrated,
    /// LoRA on the seeds + every generated item with a text (the filters' ablation).
    LoraUnfiltered,
    /// LoRA on the seeds + the kept items a seed-tuned teacher wrote.
    LoraTeacher,
    /// LoRA on the seeds + the kept items of an unlabelled pool the model labelled.
    LoraAnnotated,
    /// LoRA on the seeds + the kept generated items + the kept annotated pool (the teacher
    /// paper's mix of generation and annotation).
    LoraMixed,
    /// Staged: the `lora-synthetic` adapter trained on, on the seeds alone (the real examples
    /// last, to take out what the generated ones taught wrongly).
    LoraStaged,
}

impl Arm {
    pub const ALL: [Arm; 11] = [
        Arm::ZeroShot,
        Arm::Icl,
        Arm::IclCalibrated,
        Arm::LoraReal,
        Arm::LoraSynthetic,
        Arm::LoraSyntheticUncalibrated,
        Arm::LoraUnfiltered,
        Arm::LoraTeacher,
        Arm::LoraAnnotated,
        Arm::LoraMixed,
        Arm::LoraStaged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arm::ZeroShot => "zero-shot",
            Arm::Icl => "icl",
            Arm::IclCalibrated => "icl-calibrated",
            Arm::LoraReal => "lora-real",
            Arm::LoraSynthetic => "lora-synthetic",
            Arm::LoraSyntheticUncalibrated => "lora-synthetic-uncalibrated",
            Arm::LoraUnfiltered => "lora-unfiltered",
            Arm::LoraTeacher => "lora-teacher",
            Arm::LoraAnnotated => "lora-annotated",
            Arm::LoraMixed => "lora-mixed",
            Arm::LoraStaged => "lora-staged",
        }
    }

    /// How the report's table names it.
    pub fn describe(self) -> &'static str {
        match self {
            Arm::ZeroShot => "zero-shot (no examples)",
            Arm::Icl => "ICL, the seeds as demonstrations",
            Arm::IclCalibrated => "ICL, calibrated",
            Arm::LoraReal => "LoRA, seeds only",
            Arm::LoraSynthetic => "LoRA, seeds + filtered synthetic",
            Arm::LoraSyntheticUncalibrated => "LoRA, seeds + filtered synthetic, uncalibrated",
            Arm::LoraUnfiltered => "LoRA, seeds + unfiltered synthetic",
            Arm::LoraTeacher => "LoRA, seeds + teacher-written (filtered)",
            Arm::LoraAnnotated => "LoRA, seeds + annotated pool (filtered)",
            Arm::LoraMixed => "LoRA, seeds + filtered synthetic + annotated pool",
            Arm::LoraStaged => "LoRA, seeds + filtered synthetic, then the seeds alone",
        }
    }

    pub fn trains(self) -> bool {
        !matches!(
            self,
            Arm::ZeroShot | Arm::Icl | Arm::IclCalibrated | Arm::LoraSyntheticUncalibrated
        )
    }

    /// The arm whose adapter this one reads (none for the prompted arms).
    pub fn adapter_of(self) -> Option<Arm> {
        match self {
            Arm::LoraSyntheticUncalibrated => Some(Arm::LoraSynthetic),
            a if a.trains() => Some(a),
            _ => None,
        }
    }

    /// A LoRA arm that trained on judged extra examples besides the seeds.
    pub fn has_extra(self) -> bool {
        self.trains() && self != Arm::LoraReal
    }

    /// The arm whose trained adapter this one starts from (and which must train first).
    pub fn builds_on(self) -> Option<Arm> {
        match self {
            Arm::LoraStaged => Some(Arm::LoraSynthetic),
            _ => None,
        }
    }

    /// Whether the arm needs the base model's generations (the generate and filter steps).
    pub fn needs_generation(self) -> bool {
        matches!(
            self,
            Arm::LoraSynthetic
                | Arm::LoraSyntheticUncalibrated
                | Arm::LoraUnfiltered
                | Arm::LoraMixed
                | Arm::LoraStaged
        )
    }

    /// Whether the arm needs the annotated pool (the annotate step).
    pub fn needs_annotation(self) -> bool {
        matches!(self, Arm::LoraAnnotated | Arm::LoraMixed)
    }
}

impl std::str::FromStr for Arm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Arm::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Arm::ALL.iter().map(|a| a.name()).collect();
            format!("unknown arm '{s}' (one of {})", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_serialise_the_same() {
        for a in Arm::ALL {
            assert_eq!(a.name().parse::<Arm>(), Ok(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.name());
        }
        assert!("lora".parse::<Arm>().unwrap_err().contains("lora-real"));
    }
}
