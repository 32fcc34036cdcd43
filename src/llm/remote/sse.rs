//! One server-sent event of a streamed completion, read into what the writer needs: the new
//! text, why the sequence ended (on its last chunk) and the token counts when the server gives
//! them. Both `/v1/completions` (`choices[0].text`) and `/v1/chat/completions`
//! (`choices[0].delta.content`) chunks are read.

use serde_json::Value;

/// What one `data:` line said.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chunk {
    pub text: String,
    pub finish_reason: Option<String>,
    pub prompt_tokens: Option<usize>,
    pub completion_tokens: Option<usize>,
}

/// How a `data:` line is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Chunk(Chunk),
    /// `[DONE]`: the stream's end marker.
    Done,
}

/// Reads one event's data. A line that is not such a chunk is an error whose text says what
/// came instead (cut short: a server's page of HTML is not worth a screenful).
pub fn parse(data: &str) -> Result<Data, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Data::Done);
    }
    let v: Value = serde_json::from_str(data)
        .map_err(|e| format!("a streamed chunk is not JSON ({e}): {}", excerpt(data)))?;
    if let Some(err) = v.get("error") {
        return Err(format!(
            "the server reported an error mid-stream: {}",
            error_text(err)
        ));
    }
    let mut chunk = Chunk::default();
    if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
        chunk.prompt_tokens = count(usage, "prompt_tokens");
        chunk.completion_tokens = count(usage, "completion_tokens");
    }
    let choices = match v.get("choices") {
        Some(Value::Array(c)) => c,
        // The last chunk of a stream with `include_usage` has `choices: []` and the usage.
        None if chunk.prompt_tokens.is_some() => return Ok(Data::Chunk(chunk)),
        _ => {
            return Err(format!(
                "a streamed chunk has no `choices`: {}",
                excerpt(data)
            ));
        }
    };
    let Some(choice) = choices.first() else {
        return Ok(Data::Chunk(chunk));
    };
    let text = choice
        .get("text")
        .or_else(|| choice.get("delta").and_then(|d| d.get("content")))
        // A whole (unstreamed) chat answer.
        .or_else(|| choice.get("message").and_then(|d| d.get("content")));
    match text {
        Some(Value::String(s)) => chunk.text = s.clone(),
        Some(Value::Null) | None => {}
        Some(other) => return Err(format!("a streamed chunk's text is {other}, not a string")),
    }
    chunk.finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Data::Chunk(chunk))
}

fn count(v: &Value, key: &str) -> Option<usize> {
    v.get(key).and_then(Value::as_u64).map(|n| n as usize)
}

/// The message of an OpenAI-style error body (`{"error": {"message": …}}`, `{"error": "…"}`,
/// `{"detail": …}`), else the body itself, shortened.
pub fn error_text(v: &Value) -> String {
    let inner = v.get("error").unwrap_or(v);
    let msg = inner
        .get("message")
        .or_else(|| inner.get("detail"))
        .or_else(|| v.get("detail"))
        .unwrap_or(inner);
    match msg {
        Value::String(s) => excerpt(s),
        other => excerpt(&other.to_string()),
    }
}

/// A response body's error message for a person to read.
pub fn body_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => error_text(&v),
        Err(_) => excerpt(body.trim()),
    }
}

/// At most 200 characters of `s`, on one line.
pub fn excerpt(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_completion_and_chat_chunks() {
        let c = r#"{"choices":[{"text":" great","index":0,"finish_reason":null}]}"#;
        assert_eq!(
            parse(c).unwrap(),
            Data::Chunk(Chunk {
                text: " great".into(),
                ..Chunk::default()
            })
        );
        let chat = r#"{"choices":[{"delta":{"content":"fun"},"finish_reason":"stop"}]}"#;
        let Data::Chunk(ch) = parse(chat).unwrap() else {
            panic!()
        };
        assert_eq!(
            (ch.text.as_str(), ch.finish_reason.as_deref()),
            ("fun", Some("stop"))
        );
        let role = r#"{"choices":[{"delta":{"role":"assistant"},"finish_reason":null}]}"#;
        assert_eq!(parse(role).unwrap(), Data::Chunk(Chunk::default()));
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#;
        let Data::Chunk(u) = parse(usage).unwrap() else {
            panic!()
        };
        assert_eq!((u.prompt_tokens, u.completion_tokens), (Some(7), Some(3)));
        assert_eq!(parse(" [DONE] ").unwrap(), Data::Done);
    }

    #[test]
    fn malformed_chunks_say_what_came() {
        assert!(parse("{\"choices\": [").unwrap_err().contains("not JSON"));
        assert!(parse("<html>").unwrap_err().contains("<html>"));
        assert!(parse(r#"{"id":1}"#).unwrap_err().contains("no `choices`"));
        let e = parse(r#"{"error":{"message":"out of memory"}}"#).unwrap_err();
        assert!(e.contains("out of memory"), "{e}");
        assert!(parse(r#"{"choices":[{"text":5}]}"#).is_err());
        assert_eq!(excerpt(&"x".repeat(300)).chars().count(), 201);
    }
}
