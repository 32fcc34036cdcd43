"""llama.cpp's speed on any GGUF file, for `seedforge bench decode --model FILE` (the shared
peers' scripts know the default model only): the same token ids seedforge timed, llama-cpp-python
at 2 threads on the CPU, after one warm-up run, the median of --repeats runs.

- prompt processing: one Llama.eval of the prefill ids (n_batch 512), tokens per second;
- greedy batch 1: an argmax loop around Llama.eval after the prompt ids, `--new` tokens, new
  tokens per second end to end (the prompt's evaluation included), as the shared anchor script
  measures the default model.

usage: llamacpp_speed.py --model FILE --prefill IDS --prompt IDS --new N --repeats N --out FILE
"""

import argparse
import json
import statistics
import time

import llama_cpp
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prefill", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--new", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    prefill = [int(x) for x in a.prefill.split(",")]
    prompt = [int(x) for x in a.prompt.split(",")]
    llm = llama_cpp.Llama(
        model_path=a.model, n_ctx=1024, n_batch=512, n_threads=2, verbose=False
    )
    n_vocab = llm.n_vocab()

    def last():
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))

    def timed(f):
        f()
        runs = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            f()
            runs.append(time.perf_counter() - t)
        return statistics.median(runs)

    def do_prefill():
        llm.reset()
        llm.eval(prefill)

    def do_greedy():
        llm.reset()
        llm.eval(prompt)
        for _ in range(a.new):
            llm.eval([int(np.argmax(last()))])

    p = timed(do_prefill)
    g = timed(do_greedy)
    out = {
        "versions": {"llama_cpp_python": llama_cpp.__version__},
        "figures": {
            "prefill_300_tok_per_s_wall": len(prefill) / p,
            "greedy_b1_new_tok_per_s_end_to_end_wall": a.new / g,
        },
    }
    with open(a.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
