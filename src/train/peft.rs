//! Adapters in Hugging Face PEFT's layout, so an adapter trained here loads with
//! `PeftModel.from_pretrained` on the same base model, and one trained with PEFT loads here:
//!
//! - `adapter_config.json`: PEFT's `LoraConfig` fields (`peft_type: "LORA"`, `r`, `lora_alpha`,
//!   `lora_dropout`, `target_modules`, …);
//! - `adapter_model.safetensors`: per adapted module, `base_model.model.model.layers.N.
//!   {self_attn|mlp}.<name>.lora_A.weight` `[r, in]` (= `Aᵀ`) and `….lora_B.weight` `[out, r]`
//!   (= `Bᵀ`), F32.
//!
//! The model keeps Q/K rows in transformers' order, so no row permutation is needed either way.
//! The pure part — key names, config reading and its checks — is separate from the file I/O.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Value, json};

use super::lora::{self, LoraInfo, Target};
use crate::data::atomic::write_atomic_bytes;
use crate::llm::model::Llama;
use crate::llm::model::transpose;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

#[derive(Debug, thiserror::Error)]
pub enum PeftError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

fn err(path: &Path, message: impl Into<String>) -> PeftError {
    PeftError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Which factor of an adapter a tensor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Factor {
    A,
    B,
}

/// PEFT's key for a factor of the adapter on `target` in `layer` (adapter name stripped, as
/// `save_pretrained` writes it).
pub fn key(layer: usize, target: Target, factor: Factor) -> String {
    let f = match factor {
        Factor::A => "lora_A",
        Factor::B => "lora_B",
    };
    format!(
        "base_model.model.model.layers.{layer}.{}.{}.{f}.weight",
        target.parent(),
        target.module_name()
    )
}

/// The inverse of [`key`]; also accepts keys that still carry an adapter name
/// (`lora_A.default.weight`). Errors say what is wrong with the key.
pub fn parse_key(k: &str) -> Result<(usize, Target, Factor), String> {
    let rest = k
        .strip_prefix("base_model.model.")
        .unwrap_or(k)
        .strip_prefix("model.layers.")
        .ok_or_else(|| format!("'{k}' is not a decoder-layer LoRA weight (model.layers.N.…)"))?;
    let parts: Vec<&str> = rest.split('.').collect();
    // N, parent, module, lora_X, [adapter name,] weight
    if !(parts.len() == 5 || parts.len() == 6) || parts.last() != Some(&"weight") {
        return Err(format!("'{k}' is not a lora_A/lora_B weight"));
    }
    let layer: usize = parts[0]
        .parse()
        .map_err(|_| format!("'{k}': layer '{}' is not a number", parts[0]))?;
    let target: Target = parts[2]
        .parse()
        .map_err(|_| format!("'{k}': module '{}' cannot carry an adapter here", parts[2]))?;
    if parts[1] != target.parent() {
        return Err(format!("'{k}': {} is not in {}", parts[2], parts[1]));
    }
    let factor = match parts[3] {
        "lora_A" => Factor::A,
        "lora_B" => Factor::B,
        other => return Err(format!("'{k}': '{other}' is not lora_A or lora_B")),
    };
    Ok((layer, target, factor))
}

/// The settings of a LoRA adapter read from an `adapter_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub target_modules: Vec<String>,
}

/// Reads and checks an `adapter_config.json` (`path` names it in errors): LoRA only, plain
/// `alpha / r` scaling, no DoRA, no biases, no extra trained modules.
pub fn parse_config(text: &str, path: &Path) -> Result<AdapterConfig, PeftError> {
    let v: Value = serde_json::from_str(text).map_err(|e| err(path, e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| err(path, "expected a JSON object"))?;
    let peft_type = obj.get("peft_type").and_then(Value::as_str).unwrap_or("");
    if peft_type != "LORA" {
        return Err(err(
            path,
            format!("peft_type is {peft_type:?}; seedforge loads LoRA adapters (\"LORA\") only"),
        ));
    }
    if let Some(t) = obj.get("task_type").and_then(Value::as_str)
        && t != "CAUSAL_LM"
    {
        return Err(err(
            path,
            format!("task_type {t:?} is not supported (CAUSAL_LM adapters only)"),
        ));
    }
    let truthy = |name: &str| obj.get(name).and_then(Value::as_bool).unwrap_or(false);
    for (flag, what) in [
        ("use_dora", "DoRA (use_dora)"),
        ("use_rslora", "rank-stabilised LoRA (use_rslora)"),
        ("lora_bias", "LoRA biases (lora_bias)"),
        ("fan_in_fan_out", "fan_in_fan_out weights"),
        ("use_qalora", "QA-LoRA (use_qalora)"),
    ] {
        if truthy(flag) {
            return Err(err(path, format!("{what} is not supported")));
        }
    }
    if let Some(b) = obj.get("bias").and_then(Value::as_str)
        && b != "none"
    {
        return Err(err(
            path,
            format!("bias {b:?} is not supported (only \"none\")"),
        ));
    }
    for name in ["rank_pattern", "alpha_pattern"] {
        if obj
            .get(name)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            return Err(err(
                path,
                format!("{name} (per-module ranks or alphas) is not supported"),
            ));
        }
    }
    for name in [
        "modules_to_save",
        "trainable_token_indices",
        "target_parameters",
    ] {
        let set = match obj.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(m)) => !m.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(err(
                path,
                format!("{name} is set: adapters that train other weights are not supported"),
            ));
        }
    }
    // PEFT's defaults when a key is absent: r 8, lora_alpha 8, lora_dropout 0.
    let rank = match obj.get("r") {
        None => 8,
        Some(r) => r
            .as_u64()
            .filter(|&r| r > 0)
            .ok_or_else(|| err(path, format!("r must be a positive integer, found {r}")))?
            as usize,
    };
    let alpha = match obj.get("lora_alpha") {
        None => 8.0,
        Some(a) => a
            .as_f64()
            .filter(|a| a.is_finite() && *a > 0.0)
            .ok_or_else(|| {
                err(
                    path,
                    format!("lora_alpha must be a positive number, found {a}"),
                )
            })?,
    };
    let dropout = obj
        .get("lora_dropout")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let target_modules = match obj.get("target_modules") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|m| {
                m.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(path, "target_modules must hold strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    Ok(AdapterConfig {
        rank,
        alpha,
        dropout,
        target_modules,
    })
}

/// PEFT's `adapter_config.json` for `info` (every field `save_pretrained` writes, so both PEFT
/// and readers of the file find what they expect).
pub fn config_json(info: &LoraInfo, base_model: &str) -> Value {
    let targets: Vec<&str> = info.targets.iter().map(|t| t.module_name()).collect();
    let alpha = if info.alpha.fract() == 0.0 && info.alpha.abs() < 1e15 {
        json!(info.alpha as i64)
    } else {
        json!(info.alpha)
    };
    json!({
        "alora_invocation_tokens": null,
        "alpha_pattern": {},
        "arrow_config": null,
        "auto_mapping": null,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "corda_config": null,
        "ensure_weight_tying": false,
        "eva_config": null,
        "exclude_modules": null,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "kasa_config": null,
        "layer_replication": null,
        "layers_pattern": null,
        "layers_to_transform": null,
        "loftq_config": {},
        "lora_alpha": alpha,
        "lora_bias": false,
        "lora_dropout": info.dropout,
        "lora_ga_config": null,
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "monteclora_config": null,
        "peft_type": "LORA",
        "peft_version": null,
        "qalora_group_size": 16,
        "r": info.rank,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "target_parameters": null,
        "task_type": "CAUSAL_LM",
        "trainable_token_indices": null,
        "use_bdlora": null,
        "use_dora": false,
        "use_qalora": false,
        "use_rslora": false,
        "velora_config": null
    })
}

/// Writes the model's adapters to `dir` (created if needed) as `adapter_config.json` and
/// `adapter_model.safetensors`. `base_model` is recorded for information only.
pub fn save(model: &Llama, dir: &Path, base_model: &str) -> anyhow::Result<LoraInfo> {
    let info = lora::info(model).ok_or_else(|| anyhow::anyhow!("the model has no adapters"))?;
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e.to_string()))?;
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (layer, target, lr) in lora::adapters(model) {
        let [d_in, r] = lr.a.shape().dims::<2>();
        let [_, d_out] = lr.b.shape().dims::<2>();
        let a =
            lr.a.val().into_data().try_into_vec::<f32>().map_err(|e| {
                anyhow::anyhow!("reading the adapter of layer {layer} {target}: {e:?}")
            })?;
        let b =
            lr.b.val().into_data().try_into_vec::<f32>().map_err(|e| {
                anyhow::anyhow!("reading the adapter of layer {layer} {target}: {e:?}")
            })?;
        // a [in, r] → lora_A [r, in]; b [r, out] → lora_B [out, r].
        let bytes = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        tensors.insert(
            key(layer, target, Factor::A),
            (vec![r, d_in], bytes(transpose(&a, d_in, r))),
        );
        tensors.insert(
            key(layer, target, Factor::B),
            (vec![d_out, r], bytes(transpose(&b, r, d_out))),
        );
    }
    let views = tensors
        .iter()
        .map(|(k, (shape, data))| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (k.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("building {WEIGHTS_FILE}: {e}"))?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = dir.join(WEIGHTS_FILE);
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| err(&weights, e.to_string()))?;
    // Each file is replaced whole (temp file, fsync, rename), so a crash leaves the previous
    // adapter or the new one, never a truncated file that a later job would pick as a writer.
    // The weights go first: a folder gets its config, which marks an adapter, only once its
    // weights are complete.
    write_atomic_bytes(&weights, &bytes).map_err(|e| err(&weights, e.to_string()))?;
    let config = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(&config_json(&info, base_model))? + "\n";
    write_atomic_bytes(&config, text.as_bytes()).map_err(|e| err(&config, e.to_string()))?;
    Ok(info)
}

/// Whether `dir` holds an adapter that can be loaded. The config marks one ([`save`] writes it
/// last): without it, `Ok(false)`, whatever else is there (a crash between the two files of a
/// first save leaves the weights alone). With it, `Ok(true)` when the config parses and the
/// weights file is whole (its header and length agree), else an error naming the file that is
/// missing, cut short or unreadable. Cheap enough to run on every run folder a screen lists.
pub fn check_adapter(dir: &Path) -> Result<bool, PeftError> {
    let config_path = dir.join(CONFIG_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    if !config_path.is_file() {
        return Ok(false);
    }
    if !weights_path.is_file() {
        return Err(err(&weights_path, "missing (the adapter is incomplete)"));
    }
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| err(&config_path, e.to_string()))?;
    parse_config(&text, &config_path)?;
    let bytes = std::fs::read(&weights_path).map_err(|e| err(&weights_path, e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        err(
            &weights_path,
            format!("not a complete safetensors file: {e}"),
        )
    })?;
    if st.is_empty() {
        return Err(err(&weights_path, "no LoRA tensors in the file"));
    }
    Ok(true)
}

fn read_f32(view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>, String> {
    let data = view.data();
    Ok(match view.dtype() {
        safetensors::Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        safetensors::Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        safetensors::Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => return Err(format!("dtype {other:?} is not supported (F32, F16, BF16)")),
    })
}

/// A copy of `model` carrying the adapter in `dir`, for a job that must leave the shared base
/// model as it is (the engine's model serves every later job).
pub fn with_adapter(model: &Llama, dir: &Path) -> anyhow::Result<Llama> {
    let mut m = model.clone();
    load_adapter(&mut m, dir)
        .map_err(|e| e.context(format!("loading the adapter in {}", dir.display())))?;
    Ok(m)
}

/// Loads the PEFT LoRA adapter in `dir` (written by seedforge or by PEFT) onto `model`, replacing
/// any adapters it has. Every module named in the file must exist in the model with matching
/// shapes; errors name the file and the tensor.
pub fn load_adapter(model: &mut Llama, dir: &Path) -> anyhow::Result<LoraInfo> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        err(
            &config_path,
            format!("{e} (an adapter folder holds {CONFIG_FILE} and {WEIGHTS_FILE})"),
        )
    })?;
    let cfg = parse_config(&text, &config_path)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights_path).map_err(|e| err(&weights_path, e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| err(&weights_path, e.to_string()))?;

    type Pair = (Option<Vec<f32>>, Option<Vec<f32>>);
    let mut found: BTreeMap<(usize, Target), Pair> = BTreeMap::new();
    for (name, view) in st.tensors() {
        let (layer, target, factor) = parse_key(&name).map_err(|m| err(&weights_path, m))?;
        let block = model.layers.get(layer).ok_or_else(|| {
            err(
                &weights_path,
                format!(
                    "'{name}': the model has {} layers (is this adapter for another base model?)",
                    model.layers.len()
                ),
            )
        })?;
        let proj = lora::projection(block, target);
        let expected = match factor {
            Factor::A => [cfg.rank, proj.d_in()],
            Factor::B => [proj.d_out(), cfg.rank],
        };
        if view.shape() != expected {
            return Err(err(
                &weights_path,
                format!(
                    "'{name}' has shape {:?}, expected {expected:?} (r = {} from {CONFIG_FILE}; \
                     is this adapter for another base model?)",
                    view.shape(),
                    cfg.rank
                ),
            )
            .into());
        }
        let data = read_f32(&view).map_err(|m| err(&weights_path, format!("'{name}': {m}")))?;
        let slot = found.entry((layer, target)).or_default();
        match factor {
            Factor::A => slot.0 = Some(data),
            Factor::B => slot.1 = Some(data),
        }
    }
    if found.is_empty() {
        return Err(err(&weights_path, "no LoRA tensors in the file").into());
    }
    lora::detach(model);
    let scale = cfg.alpha / cfg.rank as f64;
    for ((layer, target), pair) in found {
        let (Some(a), Some(b)) = pair else {
            return Err(err(
                &weights_path,
                format!("layer {layer} {target}: lora_A or lora_B is missing"),
            )
            .into());
        };
        let proj = lora::projection_mut(&mut model.layers[layer], target);
        let (d_in, d_out) = (proj.d_in(), proj.d_out());
        let a = transpose(&a, cfg.rank, d_in); // [r, in] → [in, r]
        let b = transpose(&b, d_out, cfg.rank); // [out, r] → [r, out]
        let seed = (layer as u64) << 8 | target as u64;
        proj.adapter = Some(lora::low_rank(
            proj,
            cfg.rank,
            a,
            b,
            scale,
            cfg.dropout,
            seed,
        ));
    }
    lora::info(model).ok_or_else(|| anyhow::anyhow!("no adapters were attached"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("dir/adapter_config.json")
    }

    #[test]
    fn keys_follow_peft_names_and_parse_back() {
        assert_eq!(
            key(3, Target::Q, Factor::A),
            "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"
        );
        assert_eq!(
            key(29, Target::Down, Factor::B),
            "base_model.model.model.layers.29.mlp.down_proj.lora_B.weight"
        );
        for t in Target::ALL {
            for f in [Factor::A, Factor::B] {
                assert_eq!(parse_key(&key(7, t, f)).unwrap(), (7, t, f));
            }
        }
        assert_eq!(
            parse_key("base_model.model.model.layers.0.self_attn.v_proj.lora_B.default.weight")
                .unwrap(),
            (0, Target::V, Factor::B)
        );
        assert!(parse_key("base_model.model.lm_head.lora_A.weight").is_err());
        assert!(
            parse_key("base_model.model.model.layers.0.mlp.q_proj.lora_A.weight")
                .unwrap_err()
                .contains("not in mlp")
        );
        assert!(
            parse_key("base_model.model.model.layers.0.self_attn.q_proj.lora_embedding_A.weight")
                .is_err()
        );
    }

    #[test]
    fn minimal_peft_config_is_read_with_peft_defaults() {
        let c = parse_config(
            r#"{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}"#,
            p(),
        )
        .unwrap();
        assert_eq!(c.rank, 8);
        assert_eq!(c.alpha, 16.0);
        assert_eq!(c.dropout, 0.0);
        assert_eq!(c.target_modules, vec!["q_proj", "v_proj"]);
        let d = parse_config(r#"{"peft_type": "LORA"}"#, p()).unwrap();
        assert_eq!((d.rank, d.alpha), (8, 8.0));
    }

    #[test]
    fn unsupported_configs_are_refused_naming_the_file() {
        for (json, needle) in [
            (r#"{"peft_type": "IA3"}"#, "LoRA adapters"),
            (r#"{"peft_type": "LORA", "use_dora": true}"#, "DoRA"),
            (
                r#"{"peft_type": "LORA", "use_rslora": true}"#,
                "rank-stabilised",
            ),
            (r#"{"peft_type": "LORA", "bias": "all"}"#, "bias"),
            (r#"{"peft_type": "LORA", "lora_bias": true}"#, "biases"),
            (
                r#"{"peft_type": "LORA", "modules_to_save": ["lm_head"]}"#,
                "modules_to_save",
            ),
            (
                r#"{"peft_type": "LORA", "rank_pattern": {"q_proj": 4}}"#,
                "rank_pattern",
            ),
            (
                r#"{"peft_type": "LORA", "task_type": "SEQ_CLS"}"#,
                "SEQ_CLS",
            ),
            (r#"{"peft_type": "LORA", "r": 0}"#, "positive integer"),
            (r#"not json"#, "dir/adapter_config.json"),
        ] {
            let e = parse_config(json, p()).unwrap_err().to_string();
            assert!(e.contains("dir/adapter_config.json"), "{e}");
            assert!(e.contains(needle), "{json}: {e}");
        }
    }

    #[test]
    fn written_config_has_peft_fields() {
        let info = LoraInfo {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: vec![Target::Q, Target::V],
            layers: 30,
            trainable_params: 460_800,
            merged: false,
        };
        let v = config_json(&info, "SmolLM2");
        assert_eq!(v["r"], 8);
        assert_eq!(v["lora_alpha"], 16);
        assert_eq!(v["target_modules"], json!(["q_proj", "v_proj"]));
        assert_eq!(v["peft_type"], "LORA");
        assert_eq!(v["use_rslora"], false);
        let back = parse_config(&v.to_string(), p()).unwrap();
        assert_eq!((back.rank, back.alpha, back.dropout), (8, 16.0, 0.05));
    }
}
