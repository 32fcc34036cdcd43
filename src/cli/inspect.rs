//! `seedforge inspect tokens|logits|generate`: look inside the model when it misbehaves, and
//! let scripts check it against other implementations.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::model_args::ModelArgs;
use crate::llm::chat::ChatMessage;
use crate::llm::greedy::{greedy, row_logits};
use crate::llm::load;
use crate::llm::model::{StepLayout, tokens_tensor};
use crate::llm::tokenizer::TextTokenizer;

#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Token ids and vocabulary pieces of a text.
    Tokens {
        #[arg(long)]
        text: String,
        #[command(flatten)]
        common: Common,
    },
    /// The most likely next tokens after a prompt, with their logits.
    Logits {
        #[arg(long)]
        prompt: String,
        /// How many of the top tokens to show.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Greedy continuation of a prompt.
    Generate {
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 32)]
        max_tokens: usize,
        /// Keep going past the end-of-sequence token (exactly --max-tokens tokens).
        #[arg(long)]
        ignore_eos: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Wrap the text as a user turn with the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Apply a LoRA adapter in PEFT's layout (adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<std::path::PathBuf>,
}

impl Common {
    /// Loads the model, with the adapter when one was given.
    fn load(&self) -> anyhow::Result<load::LoadedModel> {
        let (mut loaded, _) = self.model.load()?;
        if let Some(dir) = &self.adapter {
            let info = crate::train::peft::load_adapter(&mut loaded.model, dir)?;
            eprintln!(
                "seedforge: adapter {} (r={}, α={}, {} layers)",
                dir.display(),
                info.rank,
                info.alpha,
                info.layers
            );
        }
        Ok(loaded)
    }
}

#[derive(Serialize)]
struct TokensOut {
    ids: Vec<u32>,
    pieces: Vec<String>,
}

#[derive(Serialize)]
struct TopToken {
    id: u32,
    piece: String,
    logit: f32,
}

#[derive(Serialize)]
struct LogitsOut {
    prompt_ids: Vec<u32>,
    top: Vec<TopToken>,
    logsumexp: f64,
}

#[derive(Serialize)]
struct GenerateOut {
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
    text: String,
}

fn prompt_text(tokenizer: &TextTokenizer, text: &str, chat: bool) -> anyhow::Result<String> {
    if chat {
        Ok(tokenizer.apply_chat(&[ChatMessage::user(text)], true)?)
    } else {
        Ok(text.to_string())
    }
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

pub fn run(cmd: InspectCommand) -> anyhow::Result<()> {
    match cmd {
        InspectCommand::Tokens { text, common } => {
            let path = common.model.path()?;
            let tokenizer = load::tokenizer(&path)
                .with_context(|| format!("reading the tokenizer of {}", path.display()))?;
            let text = prompt_text(&tokenizer, &text, common.chat)?;
            let ids = tokenizer.encode(&text)?;
            let pieces = ids.iter().map(|&i| tokenizer.piece(i)).collect();
            let out = TokensOut { ids, pieces };
            if common.json {
                return print_json(&out);
            }
            println!("{} tokens", out.ids.len());
            for (id, piece) in out.ids.iter().zip(&out.pieces) {
                println!("{id:>7}  {piece:?}");
            }
            Ok(())
        }
        InspectCommand::Logits {
            prompt,
            top,
            common,
        } => {
            let loaded = common.load()?;
            let text = prompt_text(&loaded.tokenizer, &prompt, common.chat)?;
            let ids = loaded.tokenizer.encode(&text)?;
            anyhow::ensure!(!ids.is_empty(), "the prompt has no tokens");
            let device = loaded.model.device();
            let layout = StepLayout::for_prompts(&[ids.len()]);
            let logits = row_logits(loaded.model.forward_last(
                tokens_tensor(std::slice::from_ref(&ids), 0, &device),
                &layout,
                None,
            ))?;
            let out = LogitsOut {
                prompt_ids: ids,
                top: top_k(&logits, top)
                    .into_iter()
                    .map(|(id, logit)| TopToken {
                        id,
                        piece: loaded.tokenizer.piece(id),
                        logit,
                    })
                    .collect(),
                logsumexp: logsumexp(&logits),
            };
            if common.json {
                return print_json(&out);
            }
            println!(
                "{} prompt tokens; logsumexp {:.4}",
                out.prompt_ids.len(),
                out.logsumexp
            );
            for t in &out.top {
                println!("{:>7}  {:>10.4}  {:?}", t.id, t.logit, t.piece);
            }
            Ok(())
        }
        InspectCommand::Generate {
            prompt,
            max_tokens,
            ignore_eos,
            common,
        } => {
            let loaded = common.load()?;
            let text = prompt_text(&loaded.tokenizer, &prompt, common.chat)?;
            let prompt_ids = loaded.tokenizer.encode(&text)?;
            anyhow::ensure!(!prompt_ids.is_empty(), "the prompt has no tokens");
            let stop = if ignore_eos {
                Vec::new()
            } else {
                loaded.tokenizer.stop_ids()
            };
            let ids = greedy(&loaded.model, &prompt_ids, max_tokens, &stop)?;
            let out = GenerateOut {
                text: loaded.tokenizer.decode(&ids, false)?,
                prompt_ids,
                ids,
            };
            if common.json {
                return print_json(&out);
            }
            println!("{}", out.text);
            eprintln!("({} new tokens: {:?})", out.ids.len(), out.ids);
            Ok(())
        }
    }
}

/// The `k` largest logits, highest first (ties by lower id, as a stable sort gives).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    idx.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    idx.into_iter()
        .take(k)
        .map(|i| (i, logits[i as usize]))
        .collect()
}

/// `log Σ exp(x)`, accumulated in f64.
pub fn logsumexp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    max + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_logsumexp_by_hand() {
        let l = [1.0, 3.0, 2.0, 3.0];
        assert_eq!(top_k(&l, 3), vec![(1, 3.0), (3, 3.0), (2, 2.0)]);
        let expected = (1f64.exp() + 3f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!((logsumexp(&l) - expected).abs() < 1e-12);
    }
}
