//! `--judge-url` and its settings: an OpenAI-compatible server whose log-probabilities of each
//! label word judge (the label check, annotation) instead of the local model.

use clap::Args;

use crate::llm::remote::{Endpoint, RemoteSettings, endpoints};

#[derive(Debug, Clone, Default, Args)]
pub struct JudgeServerArgs {
    /// An OpenAI-compatible server that judges instead of the local model, from its
    /// log-probabilities of each label word after the judge's prompt (/completions with
    /// logprobs and max_tokens 1; calibrated as the local judge is): its API base URL (e.g.
    /// http://127.0.0.1:8080/v1), or the name of an endpoint in config.toml.
    #[arg(long, value_name = "URL|NAME")]
    pub judge_url: Option<String>,
    /// The model to ask the judging server for (default: the one it serves).
    #[arg(long, value_name = "NAME", requires = "judge_url")]
    pub judge_model: Option<String>,
    /// The environment variable that holds the judging server's API key.
    #[arg(long, value_name = "VAR", requires = "judge_url")]
    pub judge_key_env: Option<String>,
    /// Judging requests in flight at once. Default 8.
    #[arg(long, value_name = "N", requires = "judge_url")]
    pub judge_concurrency: Option<usize>,
    /// Seconds one judging request may take. Default 300.
    #[arg(long, value_name = "SECS", requires = "judge_url")]
    pub judge_timeout: Option<f64>,
    /// Retries of a judging request after a 429, a 5xx, a lost connection or a timeout.
    /// Default 6.
    #[arg(long, value_name = "N", requires = "judge_url")]
    pub judge_retries: Option<u32>,
    /// How many of the most probable next tokens to ask for (every label word must be among
    /// them). Default 20 (vLLM's default cap; OpenAI's is 5).
    #[arg(long, value_name = "N", requires = "judge_url")]
    pub judge_top_logprobs: Option<usize>,
}

impl JudgeServerArgs {
    /// The judging server's settings; `None` without `--judge-url`.
    pub fn settings(&self) -> anyhow::Result<Option<RemoteSettings>> {
        let Some(u) = &self.judge_url else {
            return Ok(None);
        };
        let mut s = if u.starts_with("http://") || u.starts_with("https://") {
            RemoteSettings::new(Endpoint::new(u.clone()))
        } else {
            endpoints::named(u)?
        };
        if let Some(m) = &self.judge_model {
            s.endpoint.model = Some(m.clone());
        }
        if let Some(k) = &self.judge_key_env {
            s.endpoint.key_env = Some(k.clone());
        }
        if let Some(n) = self.judge_concurrency {
            s.concurrency = n;
        }
        if let Some(t) = self.judge_timeout {
            s.timeout_s = t;
            s.idle_timeout_s = s.idle_timeout_s.min(t);
        }
        if let Some(r) = self.judge_retries {
            s.retries = r;
        }
        if let Some(n) = self.judge_top_logprobs {
            anyhow::ensure!(n >= 1, "--judge-top-logprobs must be at least 1");
            s.top_logprobs = n;
        }
        s.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(s))
    }
}
