#!/usr/bin/env python3
"""Classify with a model `seedforge export-model` wrote, as another program would: llama.cpp on the GGUF, or
transformers on the Hugging Face folder, reading only what the export carries.

Usage: python export_classify.py --stack llamacpp|transformers --model PATH --job JOB.json --out OUT.json
  --stack        llamacpp: llama-cpp-python loads the GGUF and reads the classifier card from its metadata
                 (`seedforge.classifier`); transformers: AutoModelForCausalLM + AutoTokenizer load the folder and
                 the card is its seedforge.json
  --model PATH   the .gguf file or the folder
  --job FILE     JSON written by the test: {"texts": [str], "ids": [[int]] | null (seedforge's own prompt token ids,
                 compared with this stack's), "logit_rows": int (rows whose full next-token logits are returned)}

Per the card: prompt = before + text + after, tokenized by the stack's own tokenizer (BOS first if add_bos); each
label scored by the summed log-probability of the tokens of label_word_prefix + word right after the prompt; with a
calibration, score = log_softmax(scores) - strength * log(prior); the label is the argmax. CPU, 2 threads.
Output: {"preds": [label index], "scores": [[raw log-likelihood per label]], "logits": [[float]] (first logit_rows
rows), "ids_differ": int (rows whose prompt ids differ from seedforge's), "labels": [str], "seconds": float,
"versions": {...}}
"""
import argparse
import json
import math
import os
import sys
import time

sys.dont_write_bytecode = True


def log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(x - m) for x in row))
    return [x - lse for x in row]


def read(card, raw):
    """The label index for raw per-label log-likelihoods, as the card says to read them."""
    cal = card.get("calibration")
    if cal:
        norm = log_softmax(raw)
        scores = [s - cal["strength"] * math.log(max(p, 1e-300)) for s, p in zip(norm, cal["prior"])]
    else:
        scores = raw
    return max(range(len(scores)), key=lambda i: scores[i])


class LlamaCpp:
    def __init__(self, path):
        from llama_cpp import Llama, __version__

        self.llm = Llama(model_path=path, n_ctx=1024, n_batch=1024, n_threads=2, logits_all=True, verbose=False)
        self.card = json.loads(self.llm.metadata["seedforge.classifier"])
        self.version = {"llama_cpp_python": __version__}

    def encode(self, text, bos):
        return self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False)

    def last_rows(self, batch):
        return [self.logprob_rows(ids)[len(ids) - 1] for ids in batch]

    def logprob_rows(self, ids):
        """The next-token logits at every position of ids."""
        import numpy as np

        self.llm.reset()
        self.llm.eval(ids)
        rows = np.array(self.llm.scores[: len(ids)], dtype=np.float64)
        return rows


class Transformers:
    def __init__(self, path):
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(2)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        self.model.eval()
        with open(os.path.join(path, "seedforge.json"), encoding="utf-8") as fh:
            self.card = json.load(fh)
        self.version = {"transformers": transformers.__version__, "torch": torch.__version__}

    def encode(self, text, bos):
        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        if bos and self.tok.bos_token_id is not None:
            ids = [self.tok.bos_token_id] + ids
        return ids

    def logprob_rows(self, ids):
        with self.torch.no_grad():
            out = self.model(self.torch.tensor([ids])).logits[0]
        return out.double().numpy()

    def last_rows(self, batch):
        """Next-token logits after each prompt of batch, run together: right-padded, so causal attention keeps the
        padding (which comes last) out of every real position, which keeps its position."""
        torch = self.torch
        width = max(len(ids) for ids in batch)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        tokens = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
        with torch.no_grad():
            out = self.model(tokens, attention_mask=mask).logits
        return [out[i, len(ids) - 1].double().numpy() for i, ids in enumerate(batch)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stack", required=True, choices=["llamacpp", "transformers"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--job", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.job, encoding="utf-8") as fh:
        job = json.load(fh)
    stack = LlamaCpp(args.model) if args.stack == "llamacpp" else Transformers(args.model)
    card = stack.card
    bos = bool(card.get("add_bos"))
    before, after = card["prompt"]["before"], card["prompt"]["after"]
    words = [stack.encode(card["label_word_prefix"] + w, False) for w in card["label_words"]]
    single = all(len(w) == 1 for w in words)
    started = time.perf_counter()
    preds, scores, logits, differ = [], [], [], 0
    prompts = [stack.encode(before + text + after, bos) for text in job["texts"]]
    for i, ids in enumerate(prompts):
        if job.get("ids") is not None and ids != job["ids"][i]:
            differ += 1
    # One-token label words: one forward per prompt (transformers: 16 prompts a batch), the words read at its end.
    # Longer ones: one forward per prompt and label, over the prompt and all but the word's last token.
    lasts = []
    if single:
        for start in range(0, len(prompts), 16):
            lasts.extend(stack.last_rows(prompts[start : start + 16]))
    for i, ids in enumerate(prompts):
        raw = [0.0] * len(words)
        if single:
            last = lasts[i]
            lp = log_softmax(list(last))
            raw = [lp[w[0]] for w in words]
        else:
            for k, w in enumerate(words):
                rows = stack.logprob_rows(ids + w[:-1])
                raw[k] = sum(log_softmax(list(rows[len(ids) - 1 + j]))[t] for j, t in enumerate(w))
            if i < job.get("logit_rows", 0):
                last = stack.logprob_rows(ids)[len(ids) - 1]
        if i < job.get("logit_rows", 0):
            logits.append([float(x) for x in last])
        scores.append(raw)
        preds.append(read(card, raw))
    out = {
        "preds": preds,
        "scores": scores,
        "logits": logits,
        "ids_differ": differ,
        "labels": card["labels"],
        "seconds": time.perf_counter() - started,
        "versions": stack.version,
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
