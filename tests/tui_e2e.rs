//! The real binary in a real terminal (tmux), driven by keys on the real model: open a fresh
//! workspace, generate a few items, watch them stream in with their verdicts, look at every
//! screen, accept two items, reject one, undo, train two epochs on them, quit — then check the
//! journal, the run folder and what the screen said. Needs tmux (CI installs it); without it the test fails, it does not skip.

mod common;

use common::tmux::Tmux;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use seedforge::data::state::Status;
use seedforge::data::workspace::Workspace;
use seedforge::tui::screens::generate_form::Setting;

const WIDTH: u16 = 100;
const HEIGHT: u16 = 30;

fn show(title: &str, screen: &str) {
    println!("──── {title} ────\n{screen}");
}

/// The item id on the Review screen (the first line inside its box).
fn review_item(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("╭ Review ·"))
        .unwrap_or_else(|| panic!("no item on the Review screen:\n{screen}"));
    let line = lines[at + 1];
    let i = line
        .find("g-")
        .unwrap_or_else(|| panic!("no item id in {line:?}"));
    line[i..i + 8].to_string()
}

/// The number in the Review tab: items ready for review.
fn ready_count(screen: &str) -> usize {
    let first = screen.lines().next().unwrap_or("");
    let i = first
        .find("Review (")
        .unwrap_or_else(|| panic!("no Review tab in {first:?}"));
    first[i + 8..]
        .split(')')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The count in the message "generate done: N items written, …".
fn items_written(screen: &str) -> usize {
    let at = screen
        .find("generate done: ")
        .unwrap_or_else(|| panic!("no job summary on the screen:\n{screen}"));
    screen[at + "generate done: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no item count in the job summary:\n{screen}"))
}

fn init_workspace(bin: &Path, dir: &Path) {
    let out = Command::new(bin)
        .args(["init", "--workspace"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generate_review_undo_and_quit_in_a_real_terminal() {
    let started = Instant::now();
    let version = Command::new("tmux").arg("-V").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "this test drives the workbench in tmux, which is not installed \
         (apt-get install tmux): {version:?}"
    );
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_seedforge"));
    let model = common::model_path();
    let tmp = tempfile::tempdir().unwrap();
    let ws_dir = tmp.path().join("ws");
    init_workspace(&bin, &ws_dir);
    let config = tmp.path().join("config");

    let tmux = Tmux {
        socket: format!("seedforge-e2e-{}", std::process::id()),
    };
    // The shell line after the workbench shows its exit status and keeps the pane open.
    let cmd = format!(
        "SEEDFORGE_CONFIG_DIR='{}' '{}' --workspace '{}' --model '{}' --device cpu; \
         echo EXIT=$?; sleep 120",
        config.display(),
        bin.display(),
        ws_dir.display(),
        model.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "main",
        "-x",
        &WIDTH.to_string(),
        "-y",
        &HEIGHT.to_string(),
        &cmd,
    ]);

    // It draws at once; the model loads behind it.
    let first = tmux.wait_for("the workbench", Duration::from_secs(20), |s| {
        s.contains("1 Seeds") && s.contains("ws: ws")
    });
    show("opened", &first);
    let ready = tmux.wait_for("the model", Duration::from_secs(90), |s| {
        s.contains("loaded in")
    });
    assert!(
        ready.contains("Settings") && ready.contains("g starts"),
        "a new workspace opens on Generate:\n{ready}"
    );

    // A second seedforge on the same workspace is refused, before it touches the terminal.
    let second = format!(
        "'{}' --workspace '{}'; echo EXIT2=$?; sleep 120",
        bin.display(),
        ws_dir.display()
    );
    tmux.run(&["new-window", "-d", "-t", "main", "-n", "second", &second]);
    let start = Instant::now();
    let refused = loop {
        let s = tmux.run(&["capture-pane", "-p", "-t", "main:second"]);
        if s.contains("EXIT2=") || start.elapsed() > Duration::from_secs(20) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    show(
        "a second instance on the same workspace",
        refused.trim_end(),
    );
    // The pane wraps the message; join its lines to read it.
    assert!(
        refused
            .replace('\n', "")
            .contains("is in use by seedforge (pid"),
        "{refused}"
    );
    assert!(refused.contains("EXIT2=1"), "{refused}");
    assert!(!refused.contains("1 Seeds"), "{refused}");

    // Generate: 3 per class.
    tmux.keys(&["2", "Enter", "3", "Enter"]);
    let per_class = |s: &str| {
        s.lines()
            .find(|l| l.contains("per class"))
            .and_then(|l| l.split('│').nth(1))
            .map(|cell| cell.trim_end().to_string())
    };
    tmux.wait_for("per class set to 3", Duration::from_secs(10), |s| {
        per_class(s).is_some_and(|c| c.ends_with(" 3"))
    });
    let mut rounds = 0;
    // Items written in all rounds, as each job's summary says: the engine generates until each
    // class has its quota of kept items (or its attempt cap), so a round writes 6 or more.
    let mut written = 0;
    loop {
        rounds += 1;
        tmux.keys(&["g"]);
        let live = tmux.wait_for("text being written", Duration::from_secs(90), |s| {
            s.contains("Writing now (") && !s.contains("Writing now (0)")
        });
        if rounds == 1 {
            show("generate: writing", &live);
        }
        let done = tmux.wait_for("the generation to finish", Duration::from_secs(180), |s| {
            s.contains("generate done:") && s.contains("│ idle")
        });
        let this_round = items_written(&done);
        assert!(this_round >= 6, "3 per class asked for:\n{done}");
        written += this_round;
        if rounds == 1 {
            show("generate: done", &done);
            assert!(
                done.contains(&format!("Finished this session ({this_round})")),
                "{done}"
            );
            assert!(done.contains("✓ kept") || done.contains("✗ "), "{done}");
        }
        if ready_count(&done) >= 3 {
            break;
        }
        assert!(
            rounds < 4,
            "fewer than 3 items kept after {rounds} rounds:\n{done}"
        );
        // Another round with the next seed.
        let to_seed = Setting::Seed.row();
        tmux.keys(&vec!["Down"; to_seed]);
        tmux.keys(&["Right"]);
        tmux.keys(&vec!["Up"; to_seed]);
    }

    // Every screen during real work, each read once it shows what it must.
    let wait = Duration::from_secs(10);
    tmux.keys(&["4"]);
    let rejected = tmux.wait_for("the Rejected screen", wait, |s| s.contains("╭ Rejected"));
    show("rejected", &rejected);
    let any_rejected = !rejected.contains("Nothing rejected yet.");
    tmux.keys(&["Enter"]);
    let detail = tmux.wait_for("the item's detail", wait, |s| {
        !any_rejected || s.contains("Item g-")
    });
    show("rejected: item", &detail);
    tmux.keys(&["Escape", "5"]);
    let train = tmux.wait_for("the Train screen", wait, |s| {
        s.contains("No training run yet")
    });
    show("train", &train);
    tmux.keys(&["6"]);
    let evaluate = tmux.wait_for("the Evaluate screen", wait, |s| s.contains("Test set"));
    show("evaluate", &evaluate);
    tmux.keys(&["1"]);
    let seeds = tmux.wait_for("the Seeds screen", wait, |s| s.contains("The plot wanders"));
    show("seeds", &seeds);

    // Review: accept two, reject one, undo the rejection.
    tmux.keys(&["3"]);
    let review = tmux.wait_for("the Review screen", wait, |s| s.contains("╭ Review ·"));
    show("review", &review);
    let a = review_item(&review);
    tmux.keys(&["a"]);
    let s = tmux.wait_for("the first accept", Duration::from_secs(5), |s| {
        s.contains(&format!("accepted {a}"))
    });
    let b = review_item(&s);
    tmux.keys(&["a"]);
    let s = tmux.wait_for("the second accept", Duration::from_secs(5), |s| {
        s.contains(&format!("accepted {b}"))
    });
    let c = review_item(&s);
    tmux.keys(&["x"]);
    tmux.wait_for("the reject", Duration::from_secs(5), |s| {
        s.contains(&format!("rejected {c}"))
    });
    tmux.keys(&["u"]);
    let undone = tmux.wait_for("the undo", Duration::from_secs(5), |s| {
        s.contains(&format!("undid reject of {c}"))
    });
    show("review: after accept, accept, reject, undo", &undone);
    assert_eq!(review_item(&undone), c, "undo shows the item it undid");
    assert_ne!(a, b);
    assert_ne!(b, c);

    // Train two epochs on the seeds + the two accepted items, then (staged, the default) on the
    // seeds alone (epochs is the 4th setting); read the chart off the screen once both runs are
    // on disk.
    tmux.keys(&["5", "Down", "Down", "Down", "Enter", "2", "Enter", "g"]);
    let trained = tmux.wait_for("the training run", Duration::from_secs(300), |s| {
        s.contains("train done:") && s.contains("│ idle")
    });
    show("train: done", &trained);
    assert!(trained.contains("seeds + 2 accepted"), "{trained}");
    assert!(trained.contains("Loss · run "), "{trained}");
    assert!(trained.contains("step 2/2"), "{trained}");
    assert!(trained.contains("-train-staged"), "{trained}");
    assert!(trained.contains("-train-accep"), "{trained}");
    assert!(trained.contains("staged+2"), "{trained}");

    tmux.keys(&["q"]);
    let end = tmux.wait_for("the exit", Duration::from_secs(30), |s| s.contains("EXIT="));
    assert!(end.contains("EXIT=0"), "{end}");
    assert!(
        !end.contains("Review ·"),
        "the terminal is restored after quitting:\n{end}"
    );

    let run = std::fs::read_dir(ws_dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-train-accepted"))
        .expect("the training run's folder");
    assert!(run.join("adapter_model.safetensors").is_file());
    let staged = std::fs::read_dir(ws_dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-train-staged"))
        .expect("the staged run's folder");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(staged.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["started_from"], run.display().to_string());
    assert!(staged.join("adapter_model.safetensors").is_file());

    // The journal holds exactly what the keys did.
    let ws = Workspace::open(&ws_dir).expect("the lock was released on quit");
    assert!(ws.warnings().is_empty(), "{:?}", ws.warnings());
    let state = ws.state();
    assert_eq!(state.items().len(), written);
    for it in state.items() {
        assert!(it.verdicts().len() >= 3, "{} has no verdicts", it.id());
    }
    let status = |id: &str| state.get(id).unwrap().status();
    assert_eq!(status(&a), Status::Accepted);
    assert_eq!(status(&b), Status::Accepted);
    assert_eq!(status(&c), Status::Pending);
    assert_eq!(state.totals().accepted, 2);
    assert_eq!(state.totals().rejected, 0);
    let journal = std::fs::read_to_string(ws.journal_path()).unwrap();
    let decisions: Vec<String> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| !matches!(v["type"].as_str(), Some("item_added" | "verdict")))
        .map(|v| {
            format!(
                "{} {}",
                v["type"].as_str().unwrap(),
                v["item_id"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            format!("accept {a}"),
            format!("accept {b}"),
            format!("reject {c}"),
            "undo ".to_string()
        ]
    );
    eprintln!(
        "end-to-end run: {rounds} generation round(s), {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
