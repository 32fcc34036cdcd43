"""Tiny random models of the families seedforge runs besides Llama, made and run by transformers.

For each family: a config with a few layers and heads (random weights from a fixed seed) saved
with `save_pretrained` (config.json + model.safetensors) beside the given tokenizer.json, and
what transformers computes on it: the next-token logits after each prompt and a greedy
continuation. The same weights also go into `<family>.gguf` (f32), written with the `gguf`
library under llama.cpp's tensor names and keys, and llama.cpp (llama-cpp-python) scores the
prompts on that file, which shows the file is one llama.cpp reads as that family.
tests/model_families.rs loads the folders and the files in seedforge and compares.

usage: families_reference.py --tokenizer tokenizer.json --out DIR
       families_reference.py --peft MODEL_DIR ADAPTER_DIR --ids 1,2,3   (PEFT's logits, as JSON)
       families_reference.py --logits MODEL_DIR --ids 1,2,3               (transformers' logits)
"""

import argparse
import json
import os
import shutil

import gguf
import llama_cpp
import numpy as np
import torch
import transformers

PROMPTS = [
    [1, 504, 3436, 314, 253, 2556, 30],
    [4923, 28, 1233, 2077, 17, 1101, 260, 6245, 314, 4101, 1142, 2],
]
NEW_TOKENS = 8


def config(family, vocab):
    common = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        # Not the default, so a loader that misses where the file keeps it shows.
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    if family == "qwen2":
        return transformers.Qwen2Config(**common)
    if family == "qwen3":
        return transformers.Qwen3Config(head_dim=16, **common)
    if family == "llama3":
        # Llama 3.1/3.2's scaled rotation; a short original context so that the prompts'
        # positions reach the scaled frequencies.
        common["rope_theta"] = 10000.0
        scaling = {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        }
        return transformers.LlamaConfig(rope_scaling=scaling, **common)
    if family == "gemma3":
        # Six layers, five sliding over a 4-position window and one global, each kind with its
        # rotary base: the pattern and bases llama.cpp assumes for Gemma 3 files, and a window
        # short enough that the prompts reach past it.
        common.pop("rope_theta")
        return transformers.Gemma3TextConfig(
            head_dim=16,
            sliding_window=4,
            layer_types=["sliding_attention"] * 5 + ["full_attention"],
            query_pre_attn_scalar=16,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
            },
            **{**common, "num_hidden_layers": 6},
        )
    raise ValueError(family)


# The GGUF architecture of each family.
ARCH = {"qwen2": "qwen2", "qwen3": "qwen3", "llama3": "llama", "gemma3": "gemma3"}


def rope_scaling(cfg):
    """The scaling's settings, as transformers 4 (rope_scaling) or 5 (rope_parameters) keeps them."""
    for v in [getattr(cfg, "rope_scaling", None), getattr(cfg, "rope_parameters", None)]:
        if v and v.get("rope_type", v.get("type")) not in (None, "default"):
            return v
    return None


def llama3_factors(cfg, head_dim, theta):
    """What llama.cpp's converter writes as rope_freqs.weight for a llama3 scaling."""
    sc = rope_scaling(cfg)
    factor, low, high = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
    old = sc["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (theta ** (i / head_dim))
        wavelen = 2 * 3.141592653589793 / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def permute(w, n_head):
    """llama.cpp's converter's Q/K row order for Llama (interleaved rotation)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


GGUF_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def write_gguf(path, family, cfg, model, tokenizer_json):
    """llama.cpp's layout, f32: Q/K rows permuted for Llama only, Llama 3's scaling as
    rope_freqs.weight."""
    arch = ARCH[family]
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"tiny-{family}")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    # transformers 5 keeps it in rope_parameters (per layer type for Gemma 3), earlier
    # versions in rope_theta.
    params = getattr(cfg, "rope_parameters", None) or {}
    theta = (
        getattr(cfg, "rope_theta", None)
        or params.get("full_attention", params).get("rope_theta")
    )
    if arch == "gemma3":
        w.add_sliding_window(cfg.sliding_window)
    w.add_rope_freq_base(theta)
    if rope_scaling(cfg):
        w.add_tensor("rope_freqs.weight", llama3_factors(cfg, head_dim, theta))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    tok = json.load(open(tokenizer_json))
    vocab = tok["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    specials = {a["id"] for a in tok.get("added_tokens", []) if a.get("special")}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(
        [gguf.TokenType.CONTROL if i in specials else gguf.TokenType.NORMAL for i in range(len(tokens))]
    )
    merges = tok["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    for name, p in model.state_dict().items():
        data = p.detach().to(torch.float32).numpy()
        if name == "model.embed_tokens.weight":
            w.add_tensor("token_embd.weight", data)
        elif name == "model.norm.weight":
            w.add_tensor("output_norm.weight", data + (1.0 if arch == "gemma3" else 0.0))
        elif name == "lm_head.weight":
            continue  # tied
        else:
            layer, rest = name[len("model.layers."):].split(".", 1)
            if arch == "gemma3":
                # llama.cpp's converter stores Gemma's norms as 1 + w, and its
                # post_attention_layernorm (after the attention) as post_attention_norm.
                if rest.endswith("norm.weight"):
                    data = data + 1.0
                if rest == "post_attention_layernorm.weight":
                    w.add_tensor(f"blk.{layer}.post_attention_norm.weight", data)
                    continue
            if arch == "llama" and rest == "self_attn.q_proj.weight":
                data = permute(data, cfg.num_attention_heads)
            if arch == "llama" and rest == "self_attn.k_proj.weight":
                data = permute(data, cfg.num_key_value_heads)
            w.add_tensor(f"blk.{layer}.{GGUF_NAMES[rest]}", data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_logits(path, prompts):
    llm = llama_cpp.Llama(model_path=path, n_ctx=64, logits_all=True, verbose=False, n_threads=2)
    out = []
    for ids in prompts:
        llm.reset()
        llm.eval(ids)
        out.append(np.array(llm.scores[len(ids) - 1]).astype(float).tolist())
    return out


def peft_logits(model_dir, adapter_dir, ids):
    """The last position's logits of `model_dir` with a LoRA adapter applied by PEFT."""
    import peft

    base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model = peft.PeftModel.from_pretrained(base, adapter_dir).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer")
    ap.add_argument("--out")
    ap.add_argument("--peft", nargs=2, metavar=("MODEL_DIR", "ADAPTER_DIR"))
    ap.add_argument("--logits", metavar="MODEL_DIR")
    ap.add_argument("--ids")
    args = ap.parse_args()
    if args.logits:
        ids = [int(x) for x in args.ids.split(",")]
        model = transformers.AutoModelForCausalLM.from_pretrained(args.logits, torch_dtype=torch.float32)
        with torch.no_grad():
            print(json.dumps(model.eval()(torch.tensor([ids])).logits[0, -1].tolist()))
        return
    if args.peft:
        ids = [int(x) for x in args.ids.split(",")]
        print(json.dumps(peft_logits(args.peft[0], args.peft[1], ids)))
        return
    vocab = len(json.load(open(args.tokenizer))["model"]["vocab"])
    reference = {"transformers": transformers.__version__, "families": {}}
    for family in ["qwen2", "qwen3", "llama3", "gemma3"]:
        torch.manual_seed(7)
        cfg = config(family, vocab)
        model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
        # Random biases and norms too, so that a loader that drops them shows.
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias") or "norm" in name:
                    p.copy_(1.0 + 0.5 * torch.randn_like(p) if "norm" in name else 0.5 * torch.randn_like(p))
        model.eval()
        folder = os.path.join(args.out, family)
        model.save_pretrained(folder, safe_serialization=True)
        shutil.copy(args.tokenizer, os.path.join(folder, "tokenizer.json"))
        rows = []
        with torch.no_grad():
            for ids in PROMPTS:
                x = torch.tensor([ids])
                logits = model(x).logits[0, -1].tolist()
                out = model.generate(
                    x,
                    max_new_tokens=NEW_TOKENS,
                    do_sample=False,
                    pad_token_id=0,
                    eos_token_id=None,
                )
                rows.append(
                    {"ids": ids, "logits": logits, "greedy": out[0, len(ids):].tolist()}
                )
        path = os.path.join(args.out, f"{family}.gguf")
        write_gguf(path, family, cfg, model, args.tokenizer)
        for row, logits in zip(rows, llamacpp_logits(path, PROMPTS)):
            row["llamacpp_logits"] = logits
        reference["families"][family] = rows
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f)


if __name__ == "__main__":
    main()
