"""What transformers and llama.cpp compute on a real Gemma 3 GGUF file, for tests/gemma3_real.rs.

transformers loads the file itself (`from_pretrained(dir, gguf_file=...)`: the weights
dequantized to float32, the tokenizer converted from the file's SentencePiece vocabulary) and
gives, for each prompt: its token ids, the next-token logits at the last position (the top 10)
and a greedy continuation. llama.cpp (llama-cpp-python) runs the same file with its own
quantized kernels and gives its token ids, its top 10 and its greedy continuation.

usage: gemma3_reference.py MODEL.gguf OUT.json
"""

import json
import os
import sys

import llama_cpp
import numpy as np
import torch
import transformers

NEW_TOKENS = 12
PARAGRAPH = (
    "The committee met on a grey Tuesday morning to review the budget, and after three hours "
    "of argument about roads, schools and the new library, it agreed on almost nothing. "
)

PROMPTS = [
    ("plain", "The capital of France is"),
    ("review", "Review: a warm, funny and beautifully acted film.\nSentiment:"),
    ("spaces and symbols", "Hello world,  two  spaces\nnew line \u00fcn\u00efc\u00f8d\u00e9 \U0001F642 3.14159"),
    (
        "chat",
        "<start_of_turn>user\nWrite one short positive movie review.<end_of_turn>\n<start_of_turn>model\n",
    ),
    # Past the 512-position window of the sliding layers: the window changes these logits.
    ("long", PARAGRAPH * 18 + "In the end, the committee"),
]


def main():
    path, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    folder, name = os.path.split(os.path.abspath(path))
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32
    ).eval()
    llm = llama_cpp.Llama(model_path=path, n_ctx=1024, logits_all=True, verbose=False, n_threads=2)
    rows = []
    for label, text in PROMPTS:
        ids = tok(text).input_ids
        with torch.no_grad():
            x = torch.tensor([ids])
            logits = model(x).logits[0, -1]
            greedy = model.generate(
                x, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None, pad_token_id=0
            )[0, len(ids):].tolist()
        top = torch.topk(logits, 10)
        lc_ids = llm.tokenize(text.encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(lc_ids)
        lc_logits = np.array(llm.scores[len(lc_ids) - 1])
        lc_top = np.argsort(-lc_logits)[:10]
        lc_greedy = []
        for _ in range(NEW_TOKENS):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            lc_greedy.append(nxt)
            llm.eval([nxt])
        rows.append(
            {
                "name": label,
                "text": text,
                "ids": ids,
                "top_ids": top.indices.tolist(),
                "top_logits": top.values.tolist(),
                "greedy": greedy,
                "decoded": tok.decode(ids[1:]),
                "llamacpp_ids": list(lc_ids),
                "llamacpp_top_ids": [int(i) for i in lc_top],
                "llamacpp_top_logits": [float(lc_logits[i]) for i in lc_top],
                "llamacpp_greedy": lc_greedy,
            }
        )
    # What a label word or a training target continues a prompt with: no BOS.
    continuations = {
        text: tok(text, add_special_tokens=False).input_ids
        for text in [" positive", " negative", " A warm, funny film.\n"]
    }
    with open(out, "w") as f:
        json.dump(
            {
                "transformers": transformers.__version__,
                "prompts": rows,
                "continuations": continuations,
            },
            f,
        )


if __name__ == "__main__":
    main()
