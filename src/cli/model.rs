//! `seedforge model fetch|info`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::model_args::{ModelArgs, fetch_reporter};
use crate::llm::fetch;
use crate::llm::load;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download a model seedforge knows by name into the cache directory: smollm2-135m (the
    /// default) or gemma3-270m. `--model NAME` then loads it (fetching it on first use too).
    Fetch {
        /// smollm2-135m or gemma3-270m.
        #[arg(default_value = "smollm2-135m")]
        name: String,
        /// Fetch again even when a copy is cached.
        #[arg(long)]
        force: bool,
    },
    /// Print the architecture, sizes, quantization types and tokenizer of a model.
    Info(InfoArgs),
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Fetch { name, force } => {
            let model = fetch::KnownModel::by_name(&name).with_context(|| {
                format!(
                    "no model is known as '{name}' (known: {}); --model takes a .gguf file or a \
                     Hugging Face folder",
                    fetch::KnownModel::names()
                )
            })?;
            let dest = model.path();
            let path = if force || !dest.exists() {
                eprintln!(
                    "seedforge: fetching {} ({}) …",
                    model.name, model.description
                );
                model.fetch(&mut fetch_reporter())?
            } else {
                let path = model.ensure(&mut fetch_reporter())?;
                let sha = fetch::sha256_file(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                anyhow::ensure!(
                    sha == model.sha256,
                    "{}: SHA-256 is {sha}, expected {}; run `seedforge model fetch {} --force`",
                    path.display(),
                    model.sha256,
                    model.name
                );
                eprintln!("seedforge: already cached, SHA-256 verified");
                path
            };
            println!("{}", path.display());
            Ok(())
        }
        ModelCommand::Info(args) => info(args),
    }
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let path: PathBuf = args.model.path()?;
    let info = load::inspect(&path).with_context(|| format!("reading {}", path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    let c = &info.config;
    println!("path          {}", info.path.display());
    println!("format        {:?}", info.format);
    if let Some(name) = &info.name {
        println!("name          {name}");
    }
    println!(
        "architecture  {} (supported: {})",
        info.architecture,
        crate::llm::config::Architecture::list()
    );
    println!(
        "parameters    {:.1} M ({} layers, hidden {}, ffn {}, heads {}/{} kv, head dim {})",
        info.parameters as f64 / 1e6,
        c.num_layers,
        c.hidden_size,
        c.intermediate_size,
        c.num_heads,
        c.num_kv_heads,
        c.head_dim
    );
    println!(
        "context       {} tokens, rope theta {}, rms eps {:e}, {} output head",
        c.max_position_embeddings,
        c.rope_theta,
        c.rms_norm_eps,
        if c.tie_word_embeddings {
            "tied"
        } else {
            "separate"
        }
    );
    let types: Vec<String> = info
        .tensor_types
        .iter()
        .map(|(t, n)| format!("{t} ×{n}"))
        .collect();
    println!("tensors       {}", types.join(", "));
    println!("file size     {:.1} MB", info.file_bytes as f64 / 1e6);
    println!("tokenizer     {}", info.tokenizer);
    println!(
        "chat template {}",
        if info.chat_template { "yes" } else { "no" }
    );
    Ok(())
}
