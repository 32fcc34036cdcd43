//! Frozen weights held quantized in memory (`--weights q8_0|q4`), and the matrix products
//! computed from their blocks.
//!
//! A projection's weight is kept as ggml-style blocks of 32 (Q8_0: one scale and 32 signed
//! bytes; Q4_1: a scale, a minimum and 32 nibbles), encoded by the same quantizers the GGUF
//! writer uses. For a few rows of input (decoding) the product is taken as llama.cpp takes it:
//! each input row is quantized to 8 bits per block of 32 and multiplied in integers, block by
//! block ([`kernels`]); for many rows (prompt processing) the weight is decoded to f32 one
//! matrix at a time and multiplied by Burn's GEMM, which is faster there ([`matrix`]).

pub mod activations;
pub mod backward;
pub mod device;
pub mod kernels;
pub mod matrix;
pub mod mode;

pub use matrix::QMatrix;
pub use mode::WeightMode;
