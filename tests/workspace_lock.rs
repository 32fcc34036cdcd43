//! One writer per workspace, across processes; a killed holder's lock is taken over.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use seedforge::data::task::Task;
use seedforge::data::{OpenWarning, Workspace, WorkspaceError};

const HOLD_ENV: &str = "LOCK_HOLD_DIR";

/// Child: opens the workspace, says so, then waits to be killed. Ignored in a normal run (it
/// would check nothing there); the test below runs it with `--ignored`.
#[test]
#[ignore = "the child process of second_process_is_refused_by_pid_and_a_killed_holder_is_taken_over"]
fn lock_holder_child() {
    let dir = std::env::var(HOLD_ENV).expect("run by the lock test, which sets LOCK_HOLD_DIR");
    let _ws = Workspace::open(Path::new(&dir)).unwrap();
    println!("LOCK held");
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn second_process_is_refused_by_pid_and_a_killed_holder_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ws");
    drop(Workspace::create(&dir, &Task::demo(), &[]).unwrap());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_holder_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLD_ENV, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("LOCK held")));
    let pid = child.id();

    let err = Workspace::open(&dir).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WorkspaceError::Lock(_)), "{msg}");
    assert!(
        msg.starts_with(&format!(
            "workspace {} is in use by seedforge (pid {pid}",
            dir.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("close it or, if that process is gone"),
        "{msg}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let ws = Workspace::open(&dir).unwrap();
    assert!(
        ws.warnings()
            .iter()
            .any(|w| matches!(w, OpenWarning::StaleLock(h) if h.pid == pid)),
        "{:?}",
        ws.warnings()
    );
    let shown = ws.warnings()[0].to_string();
    assert!(shown.contains(&format!("pid {pid}")), "{shown}");
}
