#!/usr/bin/env python3
"""Generate reference vectors for seedforge's GGUF block formats.

The expected values come from gguf-py (the reference Python implementation
shipped with llama.cpp), never from seedforge itself, so the Rust tests check
our dequantizers and quantizers against an independent implementation.

Regenerate with:
    python3 -m venv /tmp/ggufpy && /tmp/ggufpy/bin/pip install gguf numpy
    /tmp/ggufpy/bin/python tests/data/gguf/gen_quant_vectors.py > tests/data/gguf/quant_vectors.json

Floats are stored as little-endian f32 hex so the comparison can be bit-exact.
"""

import json
import sys
from importlib.metadata import version

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGML_QUANT_SIZES
from gguf import quants

SEED = 20240607

# Byte offsets of the f16 scale fields inside one block of each type. Random
# bytes there would give huge or NaN scales; real files hold small ones.
SCALE_OFFSETS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}


def f32_hex(values: np.ndarray) -> str:
    return np.ascontiguousarray(values, dtype="<f4").tobytes().hex()


def sane_scale(rng: np.random.Generator) -> float:
    return float(rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(-4.0, 0.0))


def random_blocks(rng: np.random.Generator, qtype: T, n_blocks: int) -> np.ndarray:
    _, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for b in range(n_blocks):
        for k, off in enumerate(SCALE_OFFSETS[qtype]):
            if b == 1 and k == 0:
                value = 0.0  # a zero scale must give exact zeros (or the min)
            elif b == 2 and k == 0:
                value = 3.0e-6  # an f16 subnormal
            else:
                value = sane_scale(rng)
            blocks[b, off : off + 2] = np.frombuffer(np.float16(value).tobytes(), dtype=np.uint8)
    return blocks


def dequant_case(qtype: T, raw: np.ndarray, n_elements: int) -> dict:
    out = quants.dequantize(raw, qtype).reshape(-1).astype(np.float32)
    assert out.size == n_elements, (qtype.name, out.size, n_elements)
    return {
        "type": qtype.name,
        "type_id": int(qtype),
        "n_elements": n_elements,
        "bytes_hex": raw.tobytes().hex(),
        "expected_f32_hex": f32_hex(out),
    }


def dequant_cases(rng: np.random.Generator) -> list:
    cases = []
    # Plain float types: values spread over many magnitudes, both signs.
    floats = (rng.standard_normal(64) * 10.0 ** rng.uniform(-6, 4, 64)).astype(np.float32)
    floats[:4] = [0.0, -0.0, 65504.0, -1.0e-7]
    cases.append(dequant_case(T.F32, floats.view(np.uint8), 64))
    cases.append(dequant_case(T.F16, floats.astype(np.float16).view(np.uint8), 64))
    bf16 = (floats.view(np.uint32) >> 16).astype(np.uint16)
    cases.append(dequant_case(T.BF16, bf16.view(np.uint8), 64))
    for qtype in SCALE_OFFSETS:
        block_size, _ = GGML_QUANT_SIZES[qtype]
        n_blocks = 4 if block_size == 32 else 3
        blocks = random_blocks(rng, qtype, n_blocks)
        cases.append(dequant_case(qtype, blocks.reshape(-1), n_blocks * block_size))
    return cases


def quant_inputs(rng: np.random.Generator, n: int) -> np.ndarray:
    x = (rng.standard_normal(n) * 0.05).astype(np.float32)
    x[32:64] = 0.0  # an all-zero block: the scale must be 0, not NaN
    x[64:96] = 0.25  # a constant block: max == min
    x[96 + 7] = 3.5  # an outlier dominating its block
    x[128:160] = -x[128:160] ** 2  # an all-negative block
    return x


def quant_cases(rng: np.random.Generator) -> list:
    cases = []
    for qtype in [T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]:
        x = quant_inputs(rng, 256)
        if qtype in (T.F16, T.BF16):
            x[:6] = [1.0009765625 + 2.0**-11, 3.0e-6, 70000.0, -np.inf, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8]
        raw = quants.quantize(x, qtype)
        back = quants.dequantize(raw, qtype).reshape(-1).astype(np.float32)
        cases.append(
            {
                "type": qtype.name,
                "type_id": int(qtype),
                "input_f32_hex": f32_hex(x),
                "expected_bytes_hex": np.ascontiguousarray(raw).view(np.uint8).tobytes().hex(),
                "dequantized_f32_hex": f32_hex(back),
            }
        )
    return cases


def main() -> None:
    rng = np.random.default_rng(SEED)
    # Some inputs deliberately overflow f16 (they must become infinities).
    with np.errstate(over="ignore"):
        doc = {
            "generator": f"gen_quant_vectors.py with gguf {version('gguf')}, numpy {np.__version__}, seed {SEED}",
            "dequantize": dequant_cases(rng),
            "quantize": quant_cases(rng),
        }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
