//! Requests to an OpenAI-compatible server: one streamed completion at a time per call (the
//! caller keeps many in flight), retried with backoff when the server is busy, failing or gone,
//! and failing at once, with a message a user can act on, when retrying cannot help (a refused
//! key, a wrong URL, a model the server does not have).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};

use super::settings::RemoteSettings;
use super::sse::{self, Data};
use crate::llm::sampler::SamplingParams;

/// Why a server could not be used: names the endpoint and the reason, never the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the server at {endpoint}: {message}")]
pub struct RemoteError {
    pub endpoint: String,
    pub message: String,
}

/// One completion to ask for.
#[derive(Debug, Clone)]
pub struct CompletionRequest<'a> {
    /// The prompt (`/v1/completions`), or the user message (`/v1/chat/completions`).
    pub prompt: &'a str,
    pub chat: bool,
    pub sampling: &'a SamplingParams,
    /// This request's own seed.
    pub seed: u64,
}

/// What a request streamed back.
#[derive(Debug, Clone, PartialEq)]
pub enum Streamed {
    /// An attempt began (again, after a retry: what it streamed before is void).
    Started,
    Delta(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion {
    pub text: String,
    /// The server's `finish_reason` (`stop`, `length`…), when it gave one.
    pub finish_reason: Option<String>,
    /// Chunks of text streamed (a token each on llama.cpp and vLLM).
    pub chunks: usize,
    pub prompt_tokens: Option<usize>,
    pub completion_tokens: Option<usize>,
    /// Attempts it took (1: no retry).
    pub attempts: u32,
    /// Why each earlier attempt failed.
    pub retried_for: Vec<String>,
}

impl Completion {
    /// Tokens written: the server's count, else the chunks.
    pub fn tokens(&self) -> usize {
        self.completion_tokens.unwrap_or(self.chunks)
    }
}

/// What went wrong with one attempt.
enum Failure {
    /// Worth another attempt (after the server's `Retry-After` when it gave one).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The server refused `top_k`: ask again without it.
    NoTopK,
    Fatal(String),
}

fn retry(reason: impl Into<String>) -> Failure {
    Failure::Retry {
        reason: reason.into(),
        after: None,
    }
}

/// A connected server: its model resolved, its key read from the environment once.
pub struct Client {
    settings: RemoteSettings,
    http: reqwest::Client,
    key: Option<String>,
    model: String,
    top_k: AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of every debug print.
        f.debug_struct("Client")
            .field("endpoint", &self.settings.endpoint.base())
            .field("model", &self.model)
            .finish()
    }
}

impl Client {
    /// Reads the key, asks the server which models it serves (retrying while it is not up
    /// yet) and checks that the model asked for is one of them.
    pub async fn connect(settings: RemoteSettings) -> Result<Client, RemoteError> {
        let base = settings.endpoint.base().to_string();
        let err = |message: String| RemoteError {
            endpoint: base.clone(),
            message,
        };
        settings.validate().map_err(err)?;
        let key = match &settings.endpoint.key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(k) if !k.trim().is_empty() => Some(k.trim().to_string()),
                _ => {
                    return Err(err(format!(
                        "the environment variable {var} (named as the key's) is not set"
                    )));
                }
            },
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(settings.connect_timeout_s))
            .build()
            .map_err(|e| err(format!("cannot set up HTTP: {e}")))?;
        let mut client = Client {
            model: settings.endpoint.model.clone().unwrap_or_default(),
            top_k: AtomicBool::new(settings.send_top_k),
            settings,
            http,
            key,
        };
        client.model = client.resolve_model().await?;
        Ok(client)
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    /// The model the requests name.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn endpoint(&self) -> &str {
        self.settings.endpoint.base()
    }

    fn error(&self, message: impl Into<String>) -> RemoteError {
        RemoteError {
            endpoint: self.endpoint().to_string(),
            message: message.into(),
        }
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    /// The model asked for, checked against `/models`; the only one served when none was
    /// named. A server without `/models` is taken at its word.
    async fn resolve_model(&self) -> Result<String, RemoteError> {
        let asked = self.settings.endpoint.model.clone();
        let mut retries = 0;
        let listed = loop {
            match self.list_models().await {
                Ok(l) => break l,
                Err(f) => self.after_failure(f, &mut retries).await?,
            }
        };
        match (asked, listed) {
            (Some(m), None) => Ok(m),
            (None, None) => Err(self.error(
                "the server lists no models (no /models); name the model with --writer-model \
                 (--judge-model for a judging server)",
            )),
            (Some(m), Some(ids)) if ids.is_empty() || serves(&ids, &m) => Ok(m),
            (Some(m), Some(ids)) => Err(self.error(format!(
                "it does not serve the model `{m}`; it serves: {}",
                ids.join(", ")
            ))),
            (None, Some(ids)) if ids.len() == 1 => Ok(ids[0].clone()),
            (None, Some(ids)) if ids.is_empty() => Err(self.error(
                "the server lists no models; name the model with --writer-model \
                     (--judge-model for a judging server)",
            )),
            (None, Some(ids)) => Err(self.error(format!(
                "it serves several models ({}); name one with --writer-model (--judge-model \
                 for a judging server)",
                ids.join(", ")
            ))),
        }
    }

    /// The ids `/models` lists; `None` when the server has no `/models`.
    async fn list_models(&self) -> Result<Option<Vec<String>>, Failure> {
        let resp = self
            .authorized(self.http.get(self.settings.endpoint.join("models")))
            .timeout(Duration::from_secs_f64(self.settings.timeout_s))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.text().await.unwrap_or_default();
            return Err(self.refusal(status, &headers, &body, "models"));
        }
        let body = resp.text().await.map_err(|e| self.transport(e))?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| retry(format!("/models answered with no JSON ({e})")))?;
        Ok(Some(
            v.get("data")
                .and_then(Value::as_array)
                .map(|d| {
                    d.iter()
                        .filter_map(|m| m.get("id").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }

    /// Streams one completion, calling `on` as text arrives; retried on what retrying can fix.
    pub async fn complete(
        &self,
        request: &CompletionRequest<'_>,
        on: &mut (dyn FnMut(Streamed) + Send),
    ) -> Result<Completion, RemoteError> {
        let (mut attempts, mut retries) = (0u32, 0u32);
        let mut retried_for = Vec::new();
        loop {
            attempts += 1;
            on(Streamed::Started);
            match self.attempt(request, on).await {
                Ok(mut c) => {
                    c.attempts = attempts;
                    c.retried_for = retried_for;
                    return Ok(c);
                }
                Err(f) => {
                    if let Failure::Retry { reason, .. } = &f {
                        retried_for.push(reason.clone());
                    }
                    self.after_failure(f, &mut retries).await?
                }
            }
        }
    }

    /// After a failed attempt: waits and returns to try again (the server's `Retry-After`,
    /// else an exponential backoff), or gives up when retrying cannot help or the retries are
    /// spent.
    async fn after_failure(&self, failure: Failure, retries: &mut u32) -> Result<(), RemoteError> {
        match failure {
            Failure::Fatal(m) => Err(self.error(m)),
            Failure::NoTopK => {
                self.top_k.store(false, Ordering::Relaxed);
                Ok(())
            }
            Failure::Retry { reason, after } => {
                if *retries >= self.settings.retries {
                    return Err(
                        self.error(format!("gave up after {} attempts: {reason}", *retries + 1))
                    );
                }
                let wait = after.unwrap_or_else(|| self.backoff(*retries));
                *retries += 1;
                tokio::time::sleep(wait).await;
                Ok(())
            }
        }
    }

    /// `backoff_s · 2^n`, at most 30 s, with up to a quarter more at random so that many
    /// requests refused together do not come back together.
    fn backoff(&self, n: u32) -> Duration {
        let base = (self.settings.backoff_s * 2f64.powi(n.min(16) as i32)).min(30.0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = f64::from(nanos % 1000) / 1000.0 * 0.25;
        Duration::from_secs_f64(base * (1.0 + jitter))
    }

    fn body(&self, r: &CompletionRequest<'_>) -> Value {
        let s = r.sampling;
        let mut body = json!({
            "model": self.model,
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": r.seed,
            "stream": true,
        });
        if r.chat {
            body["messages"] = json!([{"role": "user", "content": r.prompt}]);
        } else {
            body["prompt"] = json!(r.prompt);
        }
        if !s.stop.is_empty() {
            // The API takes at most 4 stop texts.
            body["stop"] = json!(s.stop.iter().take(4).collect::<Vec<_>>());
        }
        if s.top_k > 0 && self.top_k.load(Ordering::Relaxed) {
            body["top_k"] = json!(s.top_k);
        }
        if s.repetition_penalty != 1.0 {
            // vLLM's name and llama.cpp's.
            body["repetition_penalty"] = json!(s.repetition_penalty);
            body["repeat_penalty"] = json!(s.repetition_penalty);
        }
        body
    }

    async fn attempt(
        &self,
        request: &CompletionRequest<'_>,
        on: &mut (dyn FnMut(Streamed) + Send),
    ) -> Result<Completion, Failure> {
        let path = if request.chat {
            "chat/completions"
        } else {
            "completions"
        };
        let sent_top_k = request.sampling.top_k > 0 && self.top_k.load(Ordering::Relaxed);
        let resp = self
            .authorized(self.http.post(self.settings.endpoint.join(path)))
            .timeout(Duration::from_secs_f64(self.settings.timeout_s))
            .json(&self.body(request))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.text().await.unwrap_or_default();
            if sent_top_k
                && matches!(status.as_u16(), 400 | 422)
                && body.to_ascii_lowercase().contains("top_k")
            {
                return Err(Failure::NoTopK);
            }
            return Err(self.refusal(status, &headers, &body, path));
        }
        let streamed = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if !streamed {
            // A server that ignores `stream` answers with the whole completion at once.
            let body = resp.text().await.map_err(|e| self.transport(e))?;
            let chunk = match sse::parse(&body).map_err(retry)? {
                Data::Chunk(c) => c,
                Data::Done => return Err(retry("the response was only `[DONE]`")),
            };
            if chunk.finish_reason.is_none() && chunk.text.is_empty() {
                return Err(retry(format!(
                    "the response has no completion: {}",
                    sse::excerpt(&body)
                )));
            }
            on(Streamed::Delta(chunk.text.clone()));
            return Ok(Completion {
                chunks: 1,
                text: chunk.text,
                finish_reason: chunk.finish_reason,
                prompt_tokens: chunk.prompt_tokens,
                completion_tokens: chunk.completion_tokens,
                ..Completion::default()
            });
        }
        let idle = Duration::from_secs_f64(self.settings.idle_timeout_s);
        let mut events = resp.bytes_stream().eventsource();
        let mut out = Completion::default();
        let mut done = false;
        let started = Instant::now();
        loop {
            let next = match tokio::time::timeout(idle, events.next()).await {
                Ok(n) => n,
                Err(_) => {
                    return Err(retry(format!(
                        "no data for {:.0} s mid-stream ({} chunks in {:.1} s)",
                        idle.as_secs_f64(),
                        out.chunks,
                        started.elapsed().as_secs_f64()
                    )));
                }
            };
            let event = match next {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(eventsource_stream::EventStreamError::Transport(e))) => {
                    return Err(self.transport(e));
                }
                Some(Err(e)) => return Err(retry(format!("the stream is malformed: {e}"))),
            };
            if event.data.trim().is_empty() {
                continue;
            }
            match sse::parse(&event.data).map_err(retry)? {
                Data::Done => {
                    done = true;
                    break;
                }
                Data::Chunk(c) => {
                    if !c.text.is_empty() {
                        out.chunks += 1;
                        out.text.push_str(&c.text);
                        on(Streamed::Delta(c.text));
                    }
                    out.finish_reason = c.finish_reason.or(out.finish_reason);
                    out.prompt_tokens = c.prompt_tokens.or(out.prompt_tokens);
                    out.completion_tokens = c.completion_tokens.or(out.completion_tokens);
                }
            }
        }
        if out.finish_reason.is_none() {
            // Every server ends a completion with its reason; without one it was cut short.
            return Err(retry(if done {
                format!(
                    "the stream ended ([DONE]) without saying why the completion stopped, after \
                     {} chunks: it was cut short (llama-cpp-python's server cuts a request short \
                     when another arrives unless started with --interrupt_requests false)",
                    out.chunks
                )
            } else {
                format!(
                    "the stream ended before the completion did (truncated after {} chunks)",
                    out.chunks
                )
            }));
        }
        Ok(out)
    }

    /// The most probable next tokens after `prompt` with their log-probabilities: one
    /// unstreamed `/completions` request with `max_tokens: 1` and `logprobs: top`, retried as
    /// [`Client::complete`] is. A server that gives no log-probabilities (or refuses them) is
    /// an error that says so.
    pub async fn next_token_logprobs(
        &self,
        prompt: &str,
        top: usize,
    ) -> Result<Vec<(String, f64)>, RemoteError> {
        let mut retries = 0u32;
        loop {
            match self.attempt_logprobs(prompt, top).await {
                Ok(t) => return Ok(t),
                Err(f) => self.after_failure(f, &mut retries).await?,
            }
        }
    }

    async fn attempt_logprobs(
        &self,
        prompt: &str,
        top: usize,
    ) -> Result<Vec<(String, f64)>, Failure> {
        let body = json!({
            "model": self.model,
            "prompt": prompt,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": top,
            "seed": 0,
            "stream": false,
        });
        let resp = self
            .authorized(self.http.post(self.settings.endpoint.join("completions")))
            .timeout(Duration::from_secs_f64(self.settings.timeout_s))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.text().await.unwrap_or_default();
            let msg = sse::body_message(&body);
            if msg.to_ascii_lowercase().contains("logprob") {
                return Err(Failure::Fatal(format!(
                    "it refused log-probabilities ({status}: {msg}); the remote judge reads the \
                     label words' log-probabilities, so it needs a server that returns them \
                     (vLLM, llama.cpp's server, llama-cpp-python with --logits_all true)"
                )));
            }
            return Err(self.refusal(status, &headers, &body, "completions"));
        }
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            retry(format!(
                "/completions answered with no JSON ({e}): {}",
                sse::excerpt(&text)
            ))
        })?;
        if let Some(err) = v.get("error") {
            return Err(retry(format!("the server reported an error: {err}")));
        }
        let Some(choice) = v
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Err(retry(format!(
                "the response has no completion: {}",
                sse::excerpt(&text)
            )));
        };
        top_logprobs(choice).ok_or_else(|| {
            Failure::Fatal(format!(
                "it returned no log-probabilities for /completions with `logprobs: {top}` (its \
                 answer: {}); the remote judge reads the label words' log-probabilities, so it \
                 needs a server that returns them (vLLM, llama.cpp's server, llama-cpp-python \
                 with --logits_all true)",
                sse::excerpt(&text)
            ))
        })
    }

    /// A transport error: a timeout, a refused or lost connection: all worth retrying.
    fn transport(&self, e: reqwest::Error) -> Failure {
        let e = e.without_url();
        if e.is_timeout() {
            retry(format!(
                "no complete answer within {:.0} s ({e})",
                self.settings.timeout_s
            ))
        } else if e.is_connect() {
            retry(format!("cannot connect ({})", source_chain(&e)))
        } else {
            retry(format!("the connection failed ({})", source_chain(&e)))
        }
    }

    /// An HTTP error status: retried when the server may get better (429, 408, 5xx), else a
    /// message that says what to change.
    fn refusal(&self, status: StatusCode, headers: &HeaderMap, body: &str, path: &str) -> Failure {
        let msg = sse::body_message(body);
        let code = status.as_u16();
        match code {
            408 | 429 | 500..=599 => Failure::Retry {
                reason: format!("{status}: {msg}"),
                after: retry_after(headers),
            },
            401 | 403 => Failure::Fatal(match &self.settings.endpoint.key_env {
                Some(var) => format!(
                    "the server refused the key in ${var} ({status}); check that variable: {msg}"
                ),
                None => format!(
                    "the server wants an API key ({status}): put it in an environment variable \
                     and name that variable with --writer-key-env (--judge-key-env for a \
                     judging server; or key_env in config.toml)"
                ),
            }),
            404 if msg.to_ascii_lowercase().contains("model") => Failure::Fatal(format!(
                "the model `{}` was not found ({status}): {msg}",
                self.model
            )),
            404 => Failure::Fatal(format!(
                "{} was not found ({status}); is {} the API's base URL (it usually ends in /v1)?",
                self.settings.endpoint.join(path),
                self.endpoint()
            )),
            _ => Failure::Fatal(format!("the server refused the request ({status}): {msg}")),
        }
    }
}

/// The first generated token's top log-probabilities in a completion choice: the legacy
/// completions form (`logprobs.top_logprobs[0]`, a map from token text to log-probability, as
/// vLLM and llama.cpp give it) or the chat form (`logprobs.content[0].top_logprobs`, a list of
/// `{token, logprob}`). `None` when the choice has none.
pub fn top_logprobs(choice: &Value) -> Option<Vec<(String, f64)>> {
    let lp = choice.get("logprobs").filter(|v| !v.is_null())?;
    let mut out: Vec<(String, f64)> = Vec::new();
    if let Some(first) = lp
        .get("top_logprobs")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        match first {
            Value::Object(m) => {
                out.extend(m.iter().filter_map(|(t, p)| Some((t.clone(), p.as_f64()?))));
            }
            Value::Array(a) => out.extend(a.iter().filter_map(token_and_logprob)),
            _ => {}
        }
    } else if let Some(first) = lp
        .get("content")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        let list = first.get("top_logprobs").and_then(Value::as_array)?;
        out.extend(list.iter().filter_map(token_and_logprob));
    }
    if out.is_empty() {
        return None;
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some(out)
}

fn token_and_logprob(v: &Value) -> Option<(String, f64)> {
    Some((
        v.get("token")?.as_str()?.to_string(),
        v.get("logprob")?.as_f64()?,
    ))
}

/// Whether `model` is one of `ids` (Ollama lists `name:tag` and answers to `name` too).
fn serves(ids: &[String], model: &str) -> bool {
    ids.iter()
        .any(|id| id == model || id.strip_prefix(model).is_some_and(|t| t.starts_with(':')))
}

/// A 429's or 503's `Retry-After` in seconds (at most ten minutes).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(600.0)))
}

/// An error with its causes, `a: b: c`.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_tags_and_exact_names_are_served() {
        let ids = vec!["llama3.2:latest".to_string(), "smollm2".to_string()];
        assert!(serves(&ids, "llama3.2"));
        assert!(serves(&ids, "smollm2"));
        assert!(!serves(&ids, "llama3"));
        assert!(!serves(&ids, "smol"));
    }

    #[test]
    fn top_logprobs_in_the_completions_and_chat_forms() {
        let legacy = json!({"text": " pos", "logprobs": {"tokens": [" pos"],
            "top_logprobs": [{" negative": -2.5, " positive": -0.1}]}});
        assert_eq!(
            top_logprobs(&legacy).unwrap(),
            vec![
                (" positive".to_string(), -0.1),
                (" negative".to_string(), -2.5)
            ]
        );
        let chat = json!({"logprobs": {"content": [{"token": "a", "logprob": -0.5,
            "top_logprobs": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.5}]}]}});
        assert_eq!(top_logprobs(&chat).unwrap().len(), 2);
        assert_eq!(top_logprobs(&json!({"text": "x", "logprobs": null})), None);
        assert_eq!(top_logprobs(&json!({"text": "x"})), None);
        assert_eq!(
            top_logprobs(&json!({"logprobs": {"top_logprobs": [null]}})),
            None
        );
    }

    #[test]
    fn retry_after_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, "0.25".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
