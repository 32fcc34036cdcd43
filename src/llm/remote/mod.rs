//! A language model behind an OpenAI-compatible HTTP API (vLLM, llama.cpp's server, Ollama, a
//! hosted API): the endpoint's settings, the streamed-completion client with its retries, and
//! the server-sent-event chunks it reads. Knows no task, as the rest of `llm`.

pub mod client;
pub mod endpoints;
pub mod settings;
pub mod sse;

pub use client::{Client, Completion, CompletionRequest, RemoteError, Streamed};
pub use settings::{Endpoint, RemoteSettings};

/// A connected client with the runtime that drives it, for callers on plain threads (the
/// engine's worker, the headless commands): [`Remote::block_on`] runs its requests there.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Remote {
    /// Connects (reads the key, checks the model; see [`Client::connect`]). Must not be called
    /// from inside an async runtime.
    pub fn connect(settings: RemoteSettings) -> Result<Remote, RemoteError> {
        let endpoint = settings.endpoint.base().to_string();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError {
                endpoint,
                message: format!("cannot start the HTTP runtime: {e}"),
            })?;
        let client = runtime.block_on(Client::connect(settings))?;
        Ok(Remote { runtime, client })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// What the items it writes record about it: `{"endpoint": …, "model": …, "api": …}`.
    pub fn provenance(&self, chat: bool) -> serde_json::Value {
        serde_json::json!({
            "endpoint": self.client.endpoint(),
            "model": self.client.model(),
            "api": if chat { "chat/completions" } else { "completions" },
        })
    }
}

/// A request's own seed under the run's: distinct per request, the same on a resumed run.
pub fn request_seed(seed: u64, index: u64) -> u64 {
    // SplitMix64's finalizer, cut to 31 bits (servers read the seed as a signed 32-bit int).
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 0x7FFF_FFFF
}
