#!/usr/bin/env python3
"""Write tests/data/gguf/written_by_gguf_py.gguf with gguf-py's own GGUFWriter.

seedforge's reader is tested on this file (tests/gguf_roundtrip.rs) so that it is checked
against a writer it did not write. The values are simple formulas the Rust test recomputes,
except the Q8_0 and Q4_1 tensors, whose gguf-py dequantization is stored next to the file in
written_by_gguf_py.json (little-endian f32 hex).

Regenerate with:
    /tmp/ggufpy/bin/python tests/data/gguf/gen_reference_file.py
"""

import json
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from gguf import GGUFWriter, quants

HERE = Path(__file__).parent
OUT = HERE / "written_by_gguf_py.gguf"

w = GGUFWriter(OUT, "llama")  # adds general.architecture = "llama" first
w.add_custom_alignment(64)
w.add_key_value("test.u8", 200, V.UINT8)
w.add_key_value("test.i8", -100, V.INT8)
w.add_key_value("test.u16", 60000, V.UINT16)
w.add_key_value("test.i16", -30000, V.INT16)
w.add_key_value("test.u32", 4000000000, V.UINT32)
w.add_key_value("test.i32", -2000000000, V.INT32)
w.add_key_value("test.f32", 0.1, V.FLOAT32)
w.add_key_value("test.bool", True, V.BOOL)
w.add_key_value("test.string", "héllo ✓", V.STRING)
w.add_key_value("test.u64", 2**63 + 5, V.UINT64)
w.add_key_value("test.i64", -(2**62), V.INT64)
w.add_key_value("test.f64", 0.1, V.FLOAT64)
w.add_key_value("test.array_i32", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
w.add_key_value("test.array_str", ["a", "", "ü"], V.ARRAY, sub_type=V.STRING)
w.add_key_value("test.array_nested", [[1, 2], [3]], V.ARRAY, sub_type=V.ARRAY)

f32 = (np.arange(6 * 4, dtype=np.float32) - 10.0) * 0.25
w.add_tensor("f32", f32.reshape(6, 4))
f16 = (np.arange(3 * 8, dtype=np.float32) * -0.5).astype(np.float16)
w.add_tensor("f16", f16.reshape(3, 8))

rng = np.random.default_rng(7)
q8 = (rng.standard_normal((2, 64)) * 0.1).astype(np.float32)
w.add_tensor("q8_0", quants.quantize(q8, Q.Q8_0), raw_dtype=Q.Q8_0)
q41 = (rng.standard_normal((3, 32)) * 0.1).astype(np.float32)
w.add_tensor("q4_1", quants.quantize(q41, Q.Q4_1), raw_dtype=Q.Q4_1)

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()


def deq(x, t):
    raw = quants.quantize(x, t)
    return np.ascontiguousarray(quants.dequantize(raw, t).reshape(-1), dtype="<f4").tobytes().hex()


(HERE / "written_by_gguf_py.json").write_text(
    json.dumps({"q8_0": deq(q8, Q.Q8_0), "q4_1": deq(q41, Q.Q4_1)}, indent=1) + "\n"
)
