//! `--writer` and its settings: an OpenAI-compatible server that writes instead of the local
//! model.

use clap::Args;

use crate::llm::remote::{Endpoint, RemoteSettings, endpoints};

#[derive(Debug, Clone, Args)]
pub struct WriterArgs {
    /// An OpenAI-compatible server that writes instead of the local model: its API base URL
    /// (e.g. http://127.0.0.1:8080/v1), or the name of an endpoint in config.toml.
    #[arg(long, value_name = "URL|NAME")]
    pub writer: Option<String>,
    /// The model to ask the server for (default: the one it serves).
    #[arg(long, value_name = "NAME", requires = "writer")]
    pub writer_model: Option<String>,
    /// The environment variable that holds the server's API key (the key itself is never
    /// written anywhere).
    #[arg(long, value_name = "VAR", requires = "writer")]
    pub writer_key_env: Option<String>,
    /// Requests in flight at once (the server batches them). Default 8.
    #[arg(long, value_name = "N", requires = "writer")]
    pub writer_concurrency: Option<usize>,
    /// Seconds one request may take, its streaming included. Default 300.
    #[arg(long, value_name = "SECS", requires = "writer")]
    pub writer_timeout: Option<f64>,
    /// Retries of a request after a 429, a 5xx, a lost connection, a timeout or a malformed
    /// answer, with a growing wait (a 429's Retry-After respected). Default 6.
    #[arg(long, value_name = "N", requires = "writer")]
    pub writer_retries: Option<u32>,
    /// The first wait before a retry in seconds, doubled at each. Default 0.5.
    #[arg(long, value_name = "SECS", requires = "writer")]
    pub writer_backoff: Option<f64>,
}

impl WriterArgs {
    /// The server's settings; `None` without `--writer`.
    pub fn settings(&self) -> anyhow::Result<Option<RemoteSettings>> {
        let Some(w) = &self.writer else {
            return Ok(None);
        };
        let mut s = if w.starts_with("http://") || w.starts_with("https://") {
            RemoteSettings::new(Endpoint::new(w.clone()))
        } else {
            endpoints::named(w)?
        };
        if let Some(m) = &self.writer_model {
            s.endpoint.model = Some(m.clone());
        }
        if let Some(k) = &self.writer_key_env {
            s.endpoint.key_env = Some(k.clone());
        }
        if let Some(n) = self.writer_concurrency {
            s.concurrency = n;
        }
        if let Some(t) = self.writer_timeout {
            s.timeout_s = t;
            s.idle_timeout_s = s.idle_timeout_s.min(t);
        }
        if let Some(r) = self.writer_retries {
            s.retries = r;
        }
        if let Some(b) = self.writer_backoff {
            s.backoff_s = b;
        }
        s.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(s))
    }
}

/// The tokenizer prompts are planned with: the loaded model's, else the model file's alone (a
/// server writes, so the model itself is not loaded), kept in `alone`.
pub fn planning_tokenizer<'a>(
    loaded: Option<&'a crate::llm::load::LoadedModel>,
    model: &super::model_args::ModelArgs,
    alone: &'a mut Option<crate::llm::tokenizer::TextTokenizer>,
) -> anyhow::Result<&'a crate::llm::tokenizer::TextTokenizer> {
    match loaded {
        Some(l) => Ok(&l.tokenizer),
        None => Ok(alone.insert(crate::llm::load::tokenizer(&model.path()?)?)),
    }
}
