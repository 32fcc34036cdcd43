//! Where an OpenAI-compatible server is and how to talk to it. The API key itself is never held
//! here (nor anywhere that is saved): only the name of the environment variable that has it.

use serde::{Deserialize, Serialize};

/// An OpenAI-compatible server: its API base (`http://127.0.0.1:8080/v1`), the model to ask for
/// and the variable that holds its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The API's base URL, up to and including `/v1`.
    pub url: String,
    /// The model the requests name; `None`: the one the server lists (an error when it lists
    /// several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The environment variable with the API key (sent as a bearer token); `None`: no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// A short name for it (from `config.toml`), for the workbench.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Endpoint {
    pub fn new(url: impl Into<String>) -> Endpoint {
        Endpoint {
            url: url.into(),
            model: None,
            key_env: None,
            name: None,
        }
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// `base/path`.
    pub fn join(&self, path: &str) -> String {
        format!("{}/{}", self.base(), path.trim_start_matches('/'))
    }
}

/// How a remote writer drives its server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteSettings {
    pub endpoint: Endpoint,
    /// Requests in flight at once (the server batches them).
    pub concurrency: usize,
    /// The most seconds one request may take, streaming included.
    pub timeout_s: f64,
    /// The most seconds without a byte from the server while a request streams.
    pub idle_timeout_s: f64,
    pub connect_timeout_s: f64,
    /// Attempts after the first for a request that met a 429, a 5xx, a lost connection, a
    /// timeout or a malformed or truncated response.
    pub retries: u32,
    /// The first wait before a retry, doubled at each (a `Retry-After` overrides it).
    pub backoff_s: f64,
    /// Send `top_k` (llama.cpp, vLLM and Ollama accept it; turned off by itself when the
    /// server refuses the request for it).
    pub send_top_k: bool,
    /// How many of the most probable next tokens a judge asks for with their
    /// log-probabilities (every label word must be among them; OpenAI allows 5, vLLM 20 by
    /// default).
    pub top_logprobs: usize,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            endpoint: Endpoint::new(""),
            concurrency: 8,
            timeout_s: 300.0,
            idle_timeout_s: 60.0,
            connect_timeout_s: 10.0,
            retries: 6,
            backoff_s: 0.5,
            send_top_k: true,
            top_logprobs: 20,
        }
    }
}

impl RemoteSettings {
    pub fn new(endpoint: Endpoint) -> RemoteSettings {
        RemoteSettings {
            endpoint,
            ..RemoteSettings::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let url = self.endpoint.base();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "the writer's URL `{url}` must start with http:// or https:// \
                 (e.g. http://127.0.0.1:8080/v1)"
            ));
        }
        if reqwest::Url::parse(url).is_err() {
            return Err(format!("the writer's URL `{url}` is not a URL"));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(self.timeout_s)
            && positive(self.idle_timeout_s)
            && positive(self.connect_timeout_s))
        {
            return Err("the writer's timeouts must be positive numbers of seconds".into());
        }
        if !(self.backoff_s.is_finite() && self.backoff_s >= 0.0) {
            return Err("the writer's backoff must be ≥ 0 seconds".into());
        }
        if self.concurrency == 0 {
            return Err("the writer's concurrency must be at least 1".into());
        }
        Ok(())
    }
}
