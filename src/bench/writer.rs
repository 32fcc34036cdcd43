//! `seedforge bench writer`: the examples' writing speed through an OpenAI-compatible server at
//! several concurrencies, beside the local Burn writer on the same prompts: aggregate tokens/s
//! and items/s, and the CPU it ran on.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use crate::cli::model_args::ModelArgs;
use crate::cli::task_arg::TaskArg;
use crate::cli::writer_args::WriterArgs;
use crate::llm::remote::Remote;
use crate::pipeline::generate::{self, GenerateSettings};
use crate::pipeline::prompt::Templates;
use crate::pipeline::writer::{self, Writer};

#[derive(Debug, Args)]
pub struct WriterBenchArgs {
    #[command(flatten)]
    pub task: TaskArg,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub writer: WriterArgs,
    /// Requests in flight (the server) and sequences decoded together (the local writer).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub concurrency: Vec<usize>,
    /// Requests per figure (the task's classes in turn).
    #[arg(long, default_value_t = 32)]
    pub requests: usize,
    #[arg(long, default_value_t = 48)]
    pub max_tokens: usize,
    /// Classifier-free guidance scales for the local writer, each measured in turn (a guided
    /// batch of c rows decodes c/2 requests beside their negative prompts). The server's figures
    /// are unguided, since a server cannot be guided.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub guidance: Vec<f32>,
    /// Only the server's figures.
    #[arg(long)]
    pub no_local: bool,
    /// Write the figures as JSON here too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

pub fn run(args: WriterBenchArgs) -> anyhow::Result<()> {
    let task = args.task.load()?;
    let templates = Templates::for_task(&task)?;
    let remote_settings = args.writer.settings()?;
    anyhow::ensure!(
        remote_settings.is_some() || !args.no_local,
        "nothing to measure: give --writer URL, or leave out --no-local"
    );
    let mut settings = GenerateSettings::default();
    settings.sampling.max_new_tokens = args.max_tokens;
    // The same work on both sides: a server cannot be guided.
    settings.sampling.guidance_scale = 1.0;
    let n_labels = task.labels.len().max(1);
    settings.per_class = args.requests.div_ceil(n_labels);
    let (loaded, device) = if args.no_local {
        (None, None)
    } else {
        let (l, d) = args.model.load()?;
        (Some(l), Some(d))
    };
    let mut alone = None;
    let tokenizer =
        crate::cli::writer_args::planning_tokenizer(loaded.as_ref(), &args.model, &mut alone)?;
    println!("cpu: {}", super::predict::cpu_model());
    if let Some(d) = &device {
        println!(
            "local writer: {} on {}",
            args.model.path()?.display(),
            d.label
        );
    }
    let mut rows = Vec::new();
    let never = AtomicBool::new(false);
    let mut measure =
        |name: &str, c: usize, w: &Writer, s: &GenerateSettings| -> anyhow::Result<()> {
            let planned = generate::plan(&task, &templates, tokenizer, &w.plan_settings(s))?;
            let started = Instant::now();
            let out = writer::write(w, tokenizer, &task, s, planned, &never, &mut |_| {})?;
            let secs = started.elapsed().as_secs_f64();
            let tokens: usize = out.iter().map(|c| c.new_tokens).sum();
            let row = json!({
                "writer": name, "concurrency": c, "items": out.len(), "tokens": tokens,
                "seconds": secs, "tokens_per_second": tokens as f64 / secs,
                "items_per_second": out.len() as f64 / secs,
            });
            println!(
                "{name:<40} {c:>4} {:>6} {tokens:>7} {secs:>8.1} {:>9.1} {:>8.2}",
                out.len(),
                tokens as f64 / secs,
                out.len() as f64 / secs
            );
            rows.push(row);
            Ok(())
        };
    println!(
        "{:<40} {:>4} {:>6} {:>7} {:>8} {:>9} {:>8}",
        "writer", "conc", "items", "tokens", "seconds", "tokens/s", "items/s"
    );
    if let Some(l) = &loaded {
        for &guidance in &args.guidance {
            for &c in &args.concurrency {
                let mut s = GenerateSettings {
                    batch: c.max(1),
                    ..settings.clone()
                };
                s.sampling.guidance_scale = guidance;
                s.validate().map_err(anyhow::Error::msg)?;
                let w = Writer::Local {
                    model: &l.model,
                    batch: c.max(1),
                };
                let name = if guidance == 1.0 {
                    "local (burn)".to_string()
                } else {
                    format!("local (burn), guidance {guidance}")
                };
                measure(&name, c, &w, &s)?;
            }
        }
    }
    if let Some(rs) = remote_settings {
        for &c in &args.concurrency {
            let mut r = rs.clone();
            r.concurrency = c.max(1);
            let remote = Remote::connect(r)?;
            let name = format!("{} {}", remote.client().endpoint(), remote.client().model());
            let s = GenerateSettings {
                remote: Some(Box::new(remote.client().settings().clone())),
                ..settings.clone()
            };
            measure(&name, c, &Writer::Remote(&remote), &s)?;
        }
    }
    if let Some(path) = &args.json {
        let doc = json!({ "cpu": super::predict::cpu_model(), "rows": rows });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
