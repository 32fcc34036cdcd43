//! `seedforge bench decode`: prompt processing and generation speed on this machine, beside the
//! transformers and llama.cpp peers measured in the same run.

use clap::Args;
use serde_json::{Value, json};

use super::decode_timing::{self, NEW_TOKENS, SPEED_PROMPT, Timing};
use super::peers;
use super::rss::peak_rss_mib;
use crate::cli::model_args::ModelArgs;
use crate::llm::sampler::SamplingParams;

#[derive(Debug, Args)]
pub struct DecodeBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Timed runs per figure (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Batch sizes for sampled generation.
    #[arg(long, value_delimiter = ',', default_value = "1,8,16,32")]
    pub batches: Vec<usize>,
    /// Skip the peers (only seedforge's figures).
    #[arg(long)]
    pub no_peer: bool,
    /// Write all figures as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// llama.cpp's figures on a model other than the default one.
const LLAMACPP_SPEED: &str = include_str!("llamacpp_speed.py");

pub fn run(args: DecodeBenchArgs) -> anyhow::Result<()> {
    let (loaded, device) = args.model.load()?;
    let tk = &loaded.tokenizer;
    let dev = peers::shared_dir().join("datasets/sst2/dev.tsv");
    let text = peers::tsv_sentences(&dev, 80)?.join(" ");
    let mut ids300 = tk.encode(&text)?;
    anyhow::ensure!(
        ids300.len() >= 300,
        "{}: fewer than 300 tokens in 80 sentences",
        dev.display()
    );
    ids300.truncate(300);
    let prompt = tk.encode(SPEED_PROMPT)?;

    let mut ours: Vec<Timing> = vec![decode_timing::prefill(&loaded.model, &ids300, args.repeats)];
    eprintln!("  {}: {:.1} tok/s", ours[0].name, ours[0].tokens_per_s);
    let greedy = SamplingParams::greedy(NEW_TOKENS);
    let sampled = SamplingParams {
        temperature: 1.0,
        top_k: 50,
        ..SamplingParams::default()
    };
    let mut runs = vec![(1, greedy)];
    runs.extend(args.batches.iter().map(|&b| (b, sampled.clone())));
    for (b, params) in runs {
        let t = decode_timing::generate(&loaded.model, tk, &prompt, b, &params, args.repeats);
        eprintln!("  {}: {:.1} new tok/s", t.name, t.tokens_per_s);
        ours.push(t);
    }
    let fig = |name: &str| ours.iter().find(|t| t.name == name).map(|t| t.tokens_per_s);

    let default_model = loaded.info.path == crate::llm::fetch::default_model_path();
    let (hf, llama) = if args.no_peer {
        (Value::Null, Value::Null)
    } else if !default_model {
        // The shared peers' scripts know the default model only; llama.cpp runs this file on
        // the same token ids, transformers is left out.
        eprintln!(
            "seedforge: not the default model: llama.cpp runs {} on the same ids; transformers \
             is left out",
            loaded.info.path.display()
        );
        let reps = args.repeats.to_string();
        let ids = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let (prefill, prompt) = (ids(&ids300), ids(&prompt));
        let new = NEW_TOKENS.to_string();
        let model = loaded.info.path.display().to_string();
        let llama = peers::run_embedded_script(
            "llamacpp_speed.py",
            LLAMACPP_SPEED,
            &[
                "--model",
                &model,
                "--prefill",
                &prefill,
                "--prompt",
                &prompt,
                "--new",
                &new,
                "--repeats",
                &reps,
            ],
        )?;
        (Value::Null, llama)
    } else {
        let reps = args.repeats.to_string();
        let hf = peers::run_script("speed_hf.py", &["--repeats", &reps])?;
        let llama = if peers::has_module("llama_cpp") {
            peers::run_script("llamacpp_anchor.py", &["--repeats", &reps])?
        } else {
            eprintln!(
                "seedforge: llama-cpp-python is not installed in the peers' venv (setup.sh --with-llamacpp); skipping llama.cpp"
            );
            Value::Null
        };
        (hf, llama)
    };
    let hf_fig = |k: &str| hf["figures"][k].as_f64();
    let ll_fig = |k: &str| llama["figures"][k].as_f64();
    // (figure, seedforge, transformers, llama.cpp)
    type Row<'a> = (&'a str, Option<f64>, Option<f64>, Option<f64>);
    let rows: Vec<Row> = vec![
        (
            "prompt processing, 300 tokens (tok/s)",
            fig("prefill_300"),
            hf_fig("prefill_300_tok_per_s"),
            ll_fig("prefill_300_tok_per_s_wall"),
        ),
        (
            "greedy batch 1, 24 + 64 tokens (new tok/s)",
            fig("greedy_b1"),
            hf_fig("greedy_b1_new_tok_per_s_end_to_end"),
            ll_fig("greedy_b1_new_tok_per_s_end_to_end_wall"),
        ),
        (
            "sampled batch 1 (new tok/s)",
            fig("sample_b1"),
            hf_fig("sample_b1_new_tok_per_s_end_to_end"),
            None,
        ),
        (
            "sampled batch 8, aggregate (new tok/s)",
            fig("sample_b8"),
            None,
            None,
        ),
        (
            "sampled batch 16, aggregate (new tok/s)",
            fig("sample_b16"),
            hf_fig("sample_b16_aggregate_new_tok_per_s_end_to_end"),
            None,
        ),
        (
            "sampled batch 32, aggregate (new tok/s)",
            fig("sample_b32"),
            None,
            None,
        ),
    ];
    println!("device: {}", device.label);
    println!("cpu: {}", super::predict::cpu_model());
    let weights = loaded.model.weight_mode();
    println!(
        "weights: {weights}{}",
        if weights.is_quantized() && device.device.clone().inner() == burn::tensor::Device::flex() {
            let kind = if weights == crate::llm::quant::WeightMode::F16 {
                "f16 kernels"
            } else {
                "integer kernels"
            };
            format!(" ({kind}: {})", crate::llm::quant::kernels::isa().name())
        } else if weights.is_quantized() {
            " (blocks on the device, decoded there for each product)".to_string()
        } else {
            String::new()
        }
    );
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS of this process (load + every figure): {mib:.0} MiB");
    }
    println!(
        "{:<44} {:>10} {:>13} {:>10} {:>9} {:>9}",
        "figure", "seedforge", "transformers", "llama.cpp", "×hf", "×llama"
    );
    let cell = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "–".into());
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    };
    for (name, us, h, l) in &rows {
        println!(
            "{name:<44} {:>10} {:>13} {:>10} {:>9} {:>9}",
            cell(*us),
            cell(*h),
            cell(*l),
            ratio(*us, *h),
            ratio(*us, *l)
        );
    }
    // The goal: batched generation beats every peer's best aggregate throughput.
    let best_ours = ours
        .iter()
        .filter(|t| t.name.starts_with("sample_b"))
        .map(|t| t.tokens_per_s)
        .fold(0.0, f64::max);
    let best_peer = [
        hf_fig("sample_b16_aggregate_new_tok_per_s_end_to_end"),
        ll_fig("greedy_b1_new_tok_per_s_end_to_end_wall"),
    ]
    .into_iter()
    .flatten()
    .fold(0.0, f64::max);
    if best_peer > 0.0 {
        println!(
            "best aggregate generation: seedforge {best_ours:.1} vs best peer {best_peer:.1} new tok/s (×{:.2})",
            best_ours / best_peer
        );
    }
    if let Some(path) = args.json {
        let v = json!({"device": device.label, "cpu": super::predict::cpu_model(),
            "weights": weights.name(), "peak_rss_mib": peak_rss_mib(),
            "seedforge": ours, "transformers": hf, "llama_cpp": llama});
        std::fs::write(&path, serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}
