//! Everything about the language model and nothing about the task: GGUF and safetensors
//! reading, the tokenizer and chat template, the Llama transformer in Burn with its KV cache,
//! device choice, and fetching the default model.

pub mod chat;
pub mod config;
pub mod decode;
pub mod device;
pub mod fetch;
pub mod gguf;
pub mod greedy;
pub mod guided;
pub mod load;
pub mod model;
pub mod quant;
pub mod readback;
pub mod remote;
pub mod sampler;
pub mod tokenizer;
pub mod weights;
