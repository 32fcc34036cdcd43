//! The real SmolLM2 model on the Flex CPU device against the reference fixture computed by
//! transformers on the same GGUF (weights dequantized to f32): token ids, top-10 next tokens and
//! their logits, greedy continuations, and decoded text.

mod common;
mod golden;

use burn::tensor::Device;

#[test]
fn tokenizer_matches_reference_ids_and_decoding() {
    golden::check_tokenizer();
}

#[test]
fn logits_and_greedy_match_reference_on_cpu() {
    golden::check_model(&Device::flex(), golden::Depth::Full);
}
