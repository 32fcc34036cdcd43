//! llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`, from the peers'
//! venv: `bash ../shared/peers/setup.sh --with-llamacpp`) serving the default GGUF on 127.0.0.1,
//! and the plumbing of the small proxies the tests put in front of it to inject what servers do
//! in the wild. No mock stands in for the server.
#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The model's name on the server.
pub const ALIAS: &str = "smollm2";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The tests take turns: a server and a client on two cores are slow enough alone, the server
/// answers one request at a time, and the timeout tests need answers in seconds.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/v1")
}

/// The server on `port`, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Starts the server with `extra` arguments and waits until it accepts connections.
    pub fn start(port: u16, extra: &[&str]) -> Server {
        let mut child = spawn(Command::new(python()), port, extra);
        wait_until_up(&mut child, port);
        Server { child, port }
    }

    pub fn url(&self) -> String {
        url(self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a server that lives as long as this test process, for one kept in a static (never
/// dropped): a small shell watchdog stops it once the process is gone, whichever tests ran.
/// Returns its port once it accepts connections.
#[allow(clippy::zombie_processes)] // the watchdog outlives the tests on purpose
pub fn start_for_process(extra: &[&str]) -> u16 {
    let watchdog = r#"watch=$1; shift
"$@" & s=$!
while kill -0 "$watch" 2>/dev/null && kill -0 "$s" 2>/dev/null; do sleep 0.5; done
kill "$s" 2>/dev/null; wait "$s""#;
    let mut sh = Command::new("sh");
    sh.args(["-c", watchdog, "sh", &std::process::id().to_string()])
        .arg(python());
    let port = free_port();
    let mut child = spawn(sh, port, extra);
    wait_until_up(&mut child, port);
    port
}

/// The peers' Python, once it has llama-cpp-python's server; a test without it fails here
/// naming the command that installs it.
fn python() -> PathBuf {
    let py = seedforge::bench::peers::python();
    let ok = py.is_file()
        && Command::new(&py)
            .args(["-c", "import llama_cpp.server"])
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests need llama-cpp-python's server in the peers' Python {}: run `bash {} \
         --with-llamacpp`",
        py.display(),
        super::shared_dir().join("peers/setup.sh").display()
    );
    py
}

fn log_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("seedforge-llama-server-{port}.log"))
}

/// `launcher` (the Python, or a wrapper whose last argument is the Python) running the server.
fn spawn(mut launcher: Command, port: u16, extra: &[&str]) -> Child {
    let log = log_path(port);
    launcher
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(super::model_path())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--model_alias",
            ALIAS,
            "--n_ctx",
            "2048",
            "--verbose",
            "false",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_or(Stdio::null(), Stdio::from))
        .spawn()
        .expect("start llama_cpp.server")
}

fn wait_until_up(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "llama_cpp.server exited ({status}): {}",
                std::fs::read_to_string(log_path(port)).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "llama_cpp.server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A proxy on a free port: each connection is handed to `serve` on a thread of its own.
pub fn proxy<F>(serve: F) -> u16
where
    F: Fn(TcpStream) + Clone + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let serve = serve.clone();
            std::thread::spawn(move || serve(conn));
        }
    });
    port
}

/// One HTTP request a proxy read from its client.
pub struct Request {
    /// The request line and headers as sent.
    pub head: String,
    /// The request to send upstream: the same, asking the server to close after its answer
    /// (so the answer can be read to its end).
    pub upstream: Vec<u8>,
}

impl Request {
    /// The request line names a completion.
    pub fn is_completion(&self) -> bool {
        self.head
            .lines()
            .next()
            .unwrap_or("")
            .contains("/completions")
    }
}

/// Reads one request (head, then the body its content-length announces); `None` when the client
/// closed before sending one.
pub fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let k = client.read(&mut chunk)?;
        if k == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..k]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let k = client.read(&mut chunk)?;
        if k == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..k]);
    }
    let mut head_lines: Vec<&str> = head[..head_end - 4]
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    head_lines.push("Connection: close");
    let mut upstream = head_lines.join("\r\n").into_bytes();
    upstream.extend_from_slice(b"\r\n\r\n");
    upstream.extend_from_slice(&buf[head_end..]);
    Ok(Some(Request { head, upstream }))
}
