#!/usr/bin/env python3
"""The peer of `seedforge bench predict`: transformers + PEFT labelling the same prompts with the same adapter.

Usage: python predict_peft.py --peers DIR --job JOB.json [--adapter DIR] --batches 1,16,64 --out PATH
  --peers DIR    shared/peers (its common.py loads the model exactly as every peer does: transformers reading
                 the GGUF, weights dequantized to float32, CPU, 2 threads)
  --job FILE     JSON written by seedforge: {"prompts": [str], "labels": [str], "log_prior": [float] | null,
                 "strength": float}: the full classification prompts seedforge builds, the label words, and
                 the calibration seedforge reads the run with (log of the content-free prior; null: none)
  --adapter DIR  PEFT adapter folder (omit: the base model)

Each label is scored by the log-probability of its word (" " + label, one token) after the prompt; prompts are
batched in the order given, left-padded with an attention mask, one forward per batch, no cache. With a prior,
score = log softmax(scores) - strength * log_prior, as seedforge calibrates. Timed: tokenizing + forwards.
Output: {"runs": [{"batch", "n", "wall_s", "preds": [label index]}], "versions": {...}}
"""
import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", required=True)
    ap.add_argument("--job", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.peers))
    from common import emit, load_model, log, versions  # noqa: E402

    import torch

    with open(args.job, encoding="utf-8") as fh:
        job = json.load(fh)
    prompts, labels = job["prompts"], job["labels"]
    tok, model = load_model(threads=2)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, os.path.abspath(args.adapter))
        model.eval()
        log("applied adapter", args.adapter)
    label_ids = []
    for lab in labels:
        ids = tok(" " + lab, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            sys.exit(f"error: the label word {lab!r} is {len(ids)} tokens; this peer scores one-token labels")
        label_ids.append(ids[0])
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    prior = job.get("log_prior")
    strength = float(job.get("strength") or 1.0)
    runs = []
    for batch in [int(b) for b in args.batches.split(",")]:
        with torch.no_grad():
            # Untimed warm-up, as seedforge does.
            enc = tok(prompts[:batch], return_tensors="pt", padding=True)
            model(**enc, use_cache=False)
            preds = []
            t0 = time.perf_counter()
            for i in range(0, len(prompts), batch):
                enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True)
                logits = model(**enc, use_cache=False).logits[:, -1, :].double()
                scores = torch.log_softmax(logits, dim=-1)[:, label_ids]
                if prior is not None:
                    scores = torch.log_softmax(scores, dim=-1) - strength * torch.tensor(prior, dtype=torch.float64)
                preds.extend(int(x) for x in scores.argmax(dim=-1))
            wall = time.perf_counter() - t0
        log(f"batch {batch}: {len(prompts) / wall:.1f} texts/s")
        runs.append({"batch": batch, "n": len(prompts), "wall_s": wall, "preds": preds})
    emit({"runs": runs, "versions": versions()}, args.out)


if __name__ == "__main__":
    main()
