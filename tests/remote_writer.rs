//! The remote writer against a real OpenAI-compatible server: llama-cpp-python's
//! (`python -m llama_cpp.server`, from the peers' venv: `bash ../shared/peers/setup.sh
//! --with-llamacpp`) serving the default GGUF on 127.0.0.1 at a free port. No mock stands in for
//! it; the faults a server shows in the wild (429 bursts, truncated and malformed streams, a
//! server slower than the timeout) are injected by a small proxy in front of the real server.

mod common;

use common::llama_server::{ALIAS, Server, free_port, one_at_a_time, proxy, read_request, url};
use common::{lines, run, seedforge};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seedforge::tui::screens::generate_form::Setting;
use serde_json::Value;

/// `seedforge generate` on the demo task through `url`, `per_class` requests a class.
fn generate(url: &str, per_class: usize, out: &Path, extra: &[&str]) -> Command {
    let mut c = seedforge();
    c.args(["generate", "--device", "cpu", "--model"])
        .arg(common::model_path())
        .args(["--writer", url, "--per-class", &per_class.to_string()])
        .args(["--max-tokens", "24", "--seed", "7", "--out"])
        .arg(out)
        .args(extra);
    c
}

/// Every request 0..n exactly once.
fn assert_each_request_once(items: &[Value], n: u64) {
    let mut got: Vec<u64> = items
        .iter()
        .map(|v| v["request"].as_u64().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "requests lost or duplicated"
    );
}

#[test]
fn generate_writes_through_the_server_and_records_who_wrote() {
    let _turn = one_at_a_time();
    let server = Server::start(free_port(), &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("items.jsonl");
    let o = run(generate(
        &server.url(),
        3,
        &out,
        &["--writer-concurrency", "3"],
    ));
    assert!(o.status.success());
    let items = lines(&out);
    assert_eq!(items.len(), 6);
    assert_each_request_once(&items, 6);
    for it in &items {
        assert_eq!(it["writer"]["endpoint"], server.url());
        assert_eq!(it["writer"]["model"], ALIAS);
        assert_eq!(it["writer"]["api"], "completions");
        // llama-cpp-python now and then ends a stream with `[DONE]` and no finish reason (cut
        // short) even with --interrupt_requests false; such an answer is asked again, never
        // taken for complete. Nothing else is retried against a healthy server.
        let retried = it["retried_for"].as_array().cloned().unwrap_or_default();
        assert_eq!(it["attempts"].as_u64().unwrap(), 1 + retried.len() as u64);
        assert!(
            retried
                .iter()
                .all(|r| r.as_str().unwrap().contains("without saying why")),
            "retried for {retried:?}"
        );
        assert_ne!(it["finish"], "cancelled");
    }
    // The server wrote text (tokens streamed, counted chunk by chunk).
    assert!(
        items
            .iter()
            .any(|it| it["new_tokens"].as_u64().unwrap() > 1)
    );
    assert!(
        items
            .iter()
            .any(|it| !it["raw"].as_str().unwrap().is_empty())
    );

    // The chat API: the rendered template as the user's message.
    let chat = tmp.path().join("chat.jsonl");
    let o = run(generate(&server.url(), 1, &chat, &["--chat"]));
    assert!(o.status.success());
    let items = lines(&chat);
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["writer"]["api"], "chat/completions");
    assert!(
        !items[0]["prompt"]
            .as_str()
            .unwrap()
            .contains("<|im_start|>")
    );
}

#[test]
fn a_killed_run_resumes_without_losing_or_duplicating_and_a_restarted_server_is_waited_for() {
    let _turn = one_at_a_time();
    let mut server = Server::start(free_port(), &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("items.jsonl");
    let n = 8;
    // seedforge itself killed mid-run, then resumed.
    let mut child = generate(&server.url(), n / 2, &out, &["--writer-concurrency", "2"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 2 {
        assert!(Instant::now() < deadline, "no items written");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = lines(&out).len();
    assert!(before < n, "killed too late to test anything");
    // A line cut by the kill (simulated: a partial line at the end) is dropped, not kept.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .unwrap()
        .write_all(b"{\"text\": \"half a li")
        .unwrap();

    // The server killed mid-generation and restarted on the same port: the resumed run waits
    // for it (retries with backoff) and finishes.
    let port = server.port;
    let resumed = generate(
        &server.url(),
        n / 2,
        &out,
        &["--resume", "--writer-retries", "12"],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines_now(&out) < before + 1 {
        assert!(Instant::now() < deadline, "the resumed run wrote nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let _server = Server::start(port, &[]);
    let o = resumed.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("resuming"), "{err}");
    let items = lines(&out);
    assert_each_request_once(&items, n as u64);
    assert!(items.len() > before);
}

fn lines_now(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.matches('\n').count())
}

#[test]
fn refusals_say_what_to_change_and_never_show_the_key() {
    let _turn = one_at_a_time();
    let server = Server::start(free_port(), &["--api_key", "the-right-key"]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.jsonl");
    let var = "SEEDFORGE_TEST_WRITER_KEY";
    let wrong = "sk-wrong-0123456789";
    let mut c = generate(&server.url(), 1, &out, &["--writer-key-env", var]);
    c.env(var, wrong);
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains(var) && err.contains("401"), "{err}");
    assert!(!err.contains(wrong), "the key leaked: {err}");
    assert!(
        !std::fs::read_to_string(&out)
            .unwrap_or_default()
            .contains(wrong)
    );

    // The variable missing.
    let mut c = generate(&server.url(), 1, &out, &["--writer-key-env", var]);
    c.env_remove(var);
    let err = String::from_utf8_lossy(&run(c).stderr).to_string();
    assert!(err.contains(var) && err.contains("not set"), "{err}");

    // No key at all.
    let err =
        String::from_utf8_lossy(&run(generate(&server.url(), 1, &out, &[])).stderr).to_string();
    assert!(err.contains("--writer-key-env"), "{err}");

    // The right key writes.
    let mut c = generate(&server.url(), 1, &out, &["--writer-key-env", var]);
    c.env(var, "the-right-key");
    assert!(run(c).status.success());
    assert_eq!(lines(&out).len(), 2);
    assert!(
        !std::fs::read_to_string(&out)
            .unwrap()
            .contains("the-right-key")
    );

    // A model the server does not serve: named, with what it serves.
    let mut c = generate(
        &server.url(),
        1,
        &out,
        &["--writer-key-env", var, "--writer-model", "gpt-9"],
    );
    c.env(var, "the-right-key");
    let err = String::from_utf8_lossy(&run(c).stderr).to_string();
    assert!(err.contains("gpt-9") && err.contains(ALIAS), "{err}");

    // A URL that is not the API's base: 404, with the hint.
    let base = format!("http://127.0.0.1:{}/api", server.port);
    let mut c = generate(
        &base,
        1,
        &out,
        &["--writer-key-env", var, "--writer-model", ALIAS],
    );
    c.env(var, "the-right-key");
    let err = String::from_utf8_lossy(&run(c).stderr).to_string();
    assert!(err.contains("404") && err.contains("/v1"), "{err}");
}

/// What the proxy does to the `n` first completion requests.
#[derive(Clone, Copy)]
enum Fault {
    /// 429 with `Retry-After: 1`.
    TooMany,
    /// The stream cut after its first bytes.
    Truncated,
    /// A 200 whose stream is not JSON.
    Malformed,
    /// A sound chunk, then `[DONE]` with no finish reason (how llama-cpp-python's server ends a
    /// request another one interrupted).
    DoneEarly,
    /// No answer for this long, then the connection closed.
    Slow(Duration),
}

/// A proxy in front of `upstream` that spoils the first `n` completion requests with `fault`,
/// logging when each completion request arrived and whether it was spoiled.
struct Proxy {
    port: u16,
    log: Arc<Mutex<Vec<(Instant, bool)>>>,
}

impl Proxy {
    fn start(upstream: u16, fault: Fault, n: usize) -> Proxy {
        let log = Arc::new(Mutex::new(Vec::new()));
        let spoiled = Arc::new(AtomicUsize::new(0));
        let log2 = log.clone();
        let port = proxy(move |conn| {
            let _ = serve(conn, upstream, fault, n, &log2, &spoiled);
        });
        Proxy { port, log }
    }

    fn url(&self) -> String {
        url(self.port)
    }
}

/// One request per connection (the answer closes it).
fn serve(
    mut client: TcpStream,
    upstream: u16,
    fault: Fault,
    n: usize,
    log: &Mutex<Vec<(Instant, bool)>>,
    spoiled: &AtomicUsize,
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client)? else {
        return Ok(());
    };
    let completion = request.is_completion();
    let spoil = completion && spoiled.fetch_add(1, Ordering::SeqCst) < n;
    if completion {
        log.lock().unwrap().push((Instant::now(), spoil));
    }
    if spoil {
        match fault {
            Fault::TooMany => {
                return client.write_all(
                    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\ncontent-type: application/json\r\n\
                      content-length: 40\r\nconnection: close\r\n\r\n{\"error\":{\"message\":\"slow down please\"}}",
                );
            }
            Fault::Malformed => {
                return client.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
                      data: {\"choices\": [{\"text\": \"x\"\n\ndata: <html>oops</html>\n\n",
                );
            }
            Fault::DoneEarly => {
                return client.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
                      data: {\"choices\": [{\"text\": \" A\", \"finish_reason\": null}]}\n\ndata: [DONE]\n\n",
                );
            }
            Fault::Slow(d) => {
                std::thread::sleep(d);
                return Ok(());
            }
            Fault::Truncated => {}
        }
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(&request.upstream)?;
    let mut sent = 0usize;
    let mut chunk = [0u8; 4096];
    loop {
        let k = up.read(&mut chunk)?;
        if k == 0 {
            return Ok(());
        }
        if spoil && matches!(fault, Fault::Truncated) && sent > 0 {
            // Headers and the first piece of the stream went through; the rest never comes.
            let cut = k.min(60);
            client.write_all(&chunk[..cut])?;
            return client.shutdown(std::net::Shutdown::Both);
        }
        client.write_all(&chunk[..k])?;
        sent += k;
    }
}

/// `generate` through a proxy that spoils the first `n` completions with `fault`: every request
/// still ends up written once, and the spoiled ones took more than one attempt.
fn survives(fault: Fault, n: usize, extra: &[&str]) -> (Vec<Value>, Vec<(Instant, bool)>) {
    let server = Server::start(free_port(), &[]);
    let proxy = Proxy::start(server.port, fault, n);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("items.jsonl");
    let mut args = vec!["--writer-concurrency", "1", "--writer-backoff", "0.05"];
    args.extend_from_slice(extra);
    let o = run(generate(&proxy.url(), 2, &out, &args));
    assert!(o.status.success());
    let items = lines(&out);
    assert_each_request_once(&items, 4);
    let retried: u64 = items
        .iter()
        .map(|it| it["attempts"].as_u64().unwrap() - 1)
        .sum();
    let log = proxy.log.lock().unwrap().clone();
    match fault {
        // A timeout can also catch a sound answer on a busy machine.
        Fault::Slow(_) => assert!(retried >= n as u64),
        _ => assert_eq!(
            retried, n as u64,
            "each spoiled answer costs one more attempt"
        ),
    }
    (items, log)
}

#[test]
fn a_burst_of_429s_is_waited_out_as_retry_after_says() {
    let _turn = one_at_a_time();
    let (_, log) = survives(Fault::TooMany, 3, &[]);
    // The backoff alone would come back after 0.05–0.2 s; Retry-After says 1 s.
    for w in log.windows(2).filter(|w| w[0].1) {
        let gap = w[1].0 - w[0].0;
        assert!(gap >= Duration::from_millis(950), "came back after {gap:?}");
    }
}

#[test]
fn truncated_and_malformed_streams_and_a_slow_server_are_retried() {
    let _turn = one_at_a_time();
    survives(Fault::Truncated, 2, &[]);
    survives(Fault::Malformed, 2, &[]);
    survives(Fault::DoneEarly, 1, &[]);
    // The timeout (6 s) ends the wait, not the server (which would hold it 60 s).
    let (_, log) = survives(
        Fault::Slow(Duration::from_secs(60)),
        1,
        &["--writer-timeout", "6"],
    );
    let gap = log[1].0 - log[0].0;
    assert!(
        gap >= Duration::from_millis(5900) && gap < Duration::from_secs(30),
        "retried after {gap:?}"
    );
}

#[test]
fn a_server_that_never_gets_better_fails_the_run_with_its_reason() {
    let _turn = one_at_a_time();
    let server = Server::start(free_port(), &[]);
    let proxy = Proxy::start(server.port, Fault::TooMany, usize::MAX);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("items.jsonl");
    let o = run(generate(&proxy.url(), 1, &out, &["--writer-retries", "1"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&proxy.url())
            && err.contains("gave up after 2 attempts")
            && err.contains("429"),
        "{err}"
    );
    assert!(err.contains("--resume"), "{err}");
}

#[test]
fn the_workbench_job_streams_the_servers_tokens_and_journals_who_wrote() {
    let _turn = one_at_a_time();
    use common::engine::until_end;
    use seedforge::engine::{Command as EngineCommand, Event};
    use seedforge::llm::remote::{Endpoint, RemoteSettings};
    use seedforge::pipeline::filters::FilterSettings;
    use seedforge::pipeline::generate::GenerateSettings;

    let server = Server::start(free_port(), &[]);
    let tmp = tempfile::tempdir().unwrap();
    // The local model only plans the prompts here (the label check is off): the tiny one.
    let (ws, engine, mut rx) = common::engine::on_tiny_demo(tmp.path());
    let mut settings = GenerateSettings {
        per_class: 2,
        max_attempts_factor: 1,
        ..Default::default()
    };
    settings.sampling.max_new_tokens = 16;
    let mut remote = RemoteSettings::new(Endpoint {
        url: server.url(),
        model: Some(ALIAS.into()),
        key_env: None,
        name: None,
    });
    remote.concurrency = 2;
    settings.set_remote(Some(Box::new(remote)));
    engine
        .send(EngineCommand::Generate {
            settings,
            filters: FilterSettings {
                label_consistency: false,
                ..FilterSettings::default()
            },
            adapter: None,
        })
        .unwrap();
    let events = until_end(&mut rx);
    assert!(
        matches!(events.last(), Some(Event::JobFinished { .. })),
        "{:?}",
        events.last()
    );
    let mut deltas = std::collections::HashMap::<u64, usize>::new();
    let mut added = 0;
    for e in &events {
        match e {
            Event::Delta { index, .. } => *deltas.entry(*index).or_default() += 1,
            Event::ItemAdded { .. } => added += 1,
            _ => {}
        }
    }
    assert_eq!(added, 4);
    // Streamed: pieces, not one block at the end.
    assert!(deltas.values().any(|&n| n >= 2), "{deltas:?}");
    let w = ws.lock().unwrap();
    assert_eq!(w.state().items().len(), 4);
    for it in w.state().items() {
        let writer = &it.original().meta["writer"];
        assert_eq!(writer["endpoint"], server.url());
        assert_eq!(writer["model"], ALIAS);
    }
    let journal = std::fs::read_to_string(tmp.path().join("ws/journal.jsonl")).unwrap();
    assert_eq!(
        journal
            .matches(&format!("\"endpoint\":\"{}\"", server.url()))
            .count(),
        4
    );
    drop(w);
    engine.shutdown();
}

#[test]
fn the_workbench_offers_a_configured_server_and_generates_through_it_in_a_terminal() {
    let _turn = one_at_a_time();
    let version = Command::new("tmux").arg("-V").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "this test drives the workbench in tmux, which is not installed: {version:?}"
    );
    let server = Server::start(free_port(), &[]);
    let tmp = tempfile::tempdir().unwrap();
    let ws_dir = tmp.path().join("ws");
    let init = seedforge()
        .args(["init", "--workspace"])
        .arg(&ws_dir)
        .output()
        .unwrap();
    assert!(init.status.success());
    let config = tmp.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        format!(
            "[[endpoint]]\nname = \"srv\"\nurl = \"{}\"\nmodel = \"{ALIAS}\"\nconcurrency = 2\n",
            server.url()
        ),
    )
    .unwrap();
    let tmux = common::tmux::Tmux {
        socket: format!("seedforge-remote-{}", std::process::id()),
    };
    let cmd = format!(
        "SEEDFORGE_CONFIG_DIR='{}' '{}' --workspace '{}' --model '{}' --device cpu; echo EXIT=$?; \
         sleep 60",
        config.display(),
        env!("CARGO_BIN_EXE_seedforge"),
        ws_dir.display(),
        common::model_path().display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "main",
        "-x",
        "110",
        "-y",
        "30",
        &cmd,
    ]);
    tmux.wait_for("the model", Duration::from_secs(120), |s| {
        s.contains("loaded in")
    });
    // 2 per class, then the writer row to the server.
    tmux.keys(&["Enter", "2", "Enter"]);
    tmux.keys(&vec!["Down"; Setting::Writer.row()]);
    tmux.keys(&["Right"]);
    let chosen = tmux.wait_for("the server checked", Duration::from_secs(20), |s| {
        s.contains(&format!("srv ✓ {ALIAS}"))
    });
    println!("{chosen}");
    // One round (the attempts row to 1): exactly 2 requests a class, whatever the filters keep.
    tmux.keys(&vec![
        "Down";
        Setting::Attempts.row() - Setting::Writer.row()
    ]);
    tmux.keys(&["Enter", "1", "Enter"]);
    tmux.keys(&["g"]);
    let done = tmux.wait_for("the generation", Duration::from_secs(300), |s| {
        s.contains("generate done")
    });
    println!("{done}");
    tmux.keys(&["q"]);
    let ws = seedforge::data::workspace::Workspace::open(&ws_dir);
    let ws = match ws {
        Ok(w) => w,
        // Still held by the quitting workbench: read the journal itself.
        Err(_) => {
            std::thread::sleep(Duration::from_secs(2));
            seedforge::data::workspace::Workspace::open(&ws_dir).unwrap()
        }
    };
    let items = ws.state().items();
    assert_eq!(items.len(), 4, "2 per class through the server");
    for it in items {
        assert_eq!(it.original().meta["writer"]["endpoint"], server.url());
        assert_eq!(it.original().meta["writer"]["model"], ALIAS);
    }
}
