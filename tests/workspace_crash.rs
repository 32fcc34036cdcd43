//! Kill -9 a writer at random moments, many times: every decision it reported done must be in
//! the replay, and the journal must still parse (a torn last line dropped, never read as data).
//!
//! The child is this test binary re-run on `crash_child` with `CRASH_DIR` set. It prints
//! `CRASH begin <seq> <size>` before an append and `CRASH ok <seq> <type> <item>` once the append
//! returned. The parent kills it either after a random delay or right as it starts a large
//! record (a multi-megabyte write, so the kill can land in the middle of it).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use seedforge::data::journal::{self, JOURNAL_FILE};
use seedforge::data::task::Task;
use seedforge::data::{Item, ItemId, OpenWarning, RecordBody, Source, Status, Verdict, Workspace};

const DIR_ENV: &str = "CRASH_DIR";
/// Set for rounds that kill during a large write: the child then writes some 3 MB records.
const BIG_ENV: &str = "CRASH_BIG";
const ROUNDS: usize = 100;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: enough for choosing moments and operations.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn time_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32) | 1
}

/// The writer: runs only when started by the parent test (with `--ignored`; a normal run would
/// check nothing here).
#[test]
#[ignore = "the child process of the crash test, which runs it"]
fn crash_child() {
    let dir = std::env::var(DIR_ENV).expect("run by the crash test, which sets the folder");
    let mut ws = Workspace::open(Path::new(&dir)).expect("child opens the workspace");
    let mut rng = Rng(time_seed());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let Some(body) = pick(&ws, &mut rng) else {
            continue;
        };
        if ws.check(&body).is_err() {
            continue;
        }
        let size = match &body {
            RecordBody::ItemAdded { item } => item.text.len(),
            _ => 0,
        };
        let seq = ws.state().last_seq() + 1;
        println!("CRASH begin {seq} {size}");
        let kind = body.kind();
        let named = body.item_id().map(|i| i.to_string());
        let got = ws.append(body).expect("append succeeds on a healthy disk");
        assert_eq!(got, seq);
        let item = named
            .filter(|i| !i.is_empty())
            .or_else(|| {
                (kind == "item_added").then(|| ws.state().items().last().unwrap().id().to_string())
            })
            .unwrap_or_else(|| "-".into());
        println!("CRASH ok {seq} {kind} {item}");
    }
}

fn pick(ws: &Workspace, rng: &mut Rng) -> Option<RecordBody> {
    let items = ws.state().items();
    let any = |rng: &mut Rng| -> Option<ItemId> {
        (!items.is_empty()).then(|| items[rng.below(items.len() as u64) as usize].id().clone())
    };
    let labels = ["negative", "positive"];
    Some(match rng.below(100) {
        0..=24 => {
            let big = std::env::var_os(BIG_ENV).is_some() && rng.below(3) == 0;
            let words = if big {
                600_000
            } else {
                5 + rng.below(30) as usize
            };
            let text: String = (0..words)
                .map(|i| format!("w{} ", (i as u64 * 7919) % 1000))
                .collect();
            let label = labels[rng.below(2) as usize];
            RecordBody::ItemAdded {
                item: Item::new(text, label, Source::Generated),
            }
        }
        25..=39 => {
            let stage = ["malformed", "exact_dup", "label_consistency"][rng.below(3) as usize];
            let verdict = if rng.below(3) == 0 {
                Verdict::fail(stage, "test says no").with_score("p", 0.25)
            } else {
                Verdict::pass(stage).with_score("p", 0.75)
            };
            RecordBody::Verdict {
                item_id: any(rng)?,
                verdict,
            }
        }
        40..=54 => RecordBody::Accept { item_id: any(rng)? },
        55..=64 => RecordBody::Reject {
            item_id: any(rng)?,
            reason: Some("no".into()),
        },
        65..=71 => RecordBody::Edit {
            item_id: any(rng)?,
            text: format!("edited {}", rng.next()),
        },
        72..=77 => RecordBody::Relabel {
            item_id: any(rng)?,
            label: labels[rng.below(2) as usize].into(),
        },
        78..=83 => {
            let auto: Vec<&ItemId> = ws
                .state()
                .items()
                .iter()
                .filter(|i| i.status() == Status::AutoRejected)
                .map(|i| i.id())
                .collect();
            (!auto.is_empty()).then(|| RecordBody::Rescue {
                item_id: auto[rng.below(auto.len() as u64) as usize].clone(),
            })?
        }
        84..=93 => RecordBody::Undo {},
        _ => RecordBody::Redo {},
    })
}

enum Line {
    Begin {
        seq: u64,
        size: usize,
    },
    Ok {
        seq: u64,
        kind: String,
        item: String,
    },
}

fn parse(line: &str) -> Option<Line> {
    // The harness may print "test crash_child ... " in front of the first line.
    let at = line.find("CRASH ")?;
    let mut w = line[at + "CRASH ".len()..].split(' ');
    match w.next()? {
        "begin" => Some(Line::Begin {
            seq: w.next()?.parse().ok()?,
            size: w.next()?.parse().ok()?,
        }),
        "ok" => Some(Line::Ok {
            seq: w.next()?.parse().ok()?,
            kind: w.next()?.to_string(),
            item: w.next()?.to_string(),
        }),
        _ => None,
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_reported_decision() {
    let tmp = tempfile::tempdir().unwrap();
    let main_dir: PathBuf = tmp.path().join("ws");
    drop(Workspace::create(&main_dir, &Task::demo(), &[]).unwrap());
    let seed = time_seed();
    eprintln!("crash test rng seed {seed}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let (mut torn, mut in_flight_kept, mut mid_big_kills) = (0, 0, 0);
    let mut reported_total = 0usize;
    let mut prev_len = 0u64;
    for round in 0..ROUNDS {
        // Half the rounds: kill after a random delay, in one workspace whose history grows.
        // The other half: kill as a big write starts, each in a fresh workspace (big records
        // would make the shared one slow to replay).
        let kill_on_big = round % 2 == 1;
        let dir = if kill_on_big {
            let d = tmp.path().join(format!("big-{round}"));
            drop(Workspace::create(&d, &Task::demo(), &[]).unwrap());
            d
        } else {
            main_dir.clone()
        };
        let prev = if kill_on_big { 0 } else { prev_len };
        let mut cmd = Command::new(&exe);
        if kill_on_big {
            cmd.env(BIG_ENV, "1");
        }
        let mut child = cmd
            .args(["--exact", "crash_child", "--ignored", "--nocapture"])
            .arg("--test-threads=1")
            .env(DIR_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(l) = parse(&line) {
                    let _ = tx.send(l);
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
            s
        });

        let deadline = Instant::now() + Duration::from_millis(5 + rng.below(120));
        let mut lines = Vec::new();
        loop {
            let now = Instant::now();
            if !kill_on_big && now >= deadline {
                break;
            }
            let wait = if kill_on_big {
                Duration::from_secs(5)
            } else {
                deadline - now
            };
            match rx.recv_timeout(wait) {
                Ok(l) => {
                    let big = matches!(l, Line::Begin { size, .. } if size > 1_000_000);
                    lines.push(l);
                    if kill_on_big && big {
                        std::thread::sleep(Duration::from_micros(rng.below(1500)));
                        mid_big_kills += 1;
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    panic!(
                        "child died by itself ({status}): {}",
                        err_reader.join().unwrap()
                    );
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        drop(err_reader);
        lines.extend(rx.try_iter());

        let reported: Vec<(u64, String, String)> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Ok { seq, kind, item } => Some((*seq, kind.clone(), item.clone())),
                _ => None,
            })
            .collect();
        let last_begin = lines
            .iter()
            .filter_map(|l| match l {
                Line::Begin { seq, .. } => Some(*seq),
                _ => None,
            })
            .max();
        reported_total += reported.len();

        // Replay: opens, and the only complaints allowed are a torn line and the stale lock.
        let ws =
            Workspace::open(&dir).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        for w in ws.warnings() {
            match w {
                OpenWarning::TornLine { .. } => torn += 1,
                OpenWarning::StaleLock(_) => {}
                other => panic!("round {round}: unexpected warning {other}"),
            }
        }
        // After the reopen the journal parses whole, with consecutive sequence numbers.
        let read = journal::read(&dir.join(JOURNAL_FILE), None).unwrap();
        assert!(
            read.torn.is_none(),
            "round {round}: torn line left after reopen"
        );
        let seqs: Vec<u64> = read.records.iter().map(|(_, r)| r.seq).collect();
        assert!(
            seqs.iter().enumerate().all(|(i, &s)| s == i as u64 + 1),
            "round {round}: gaps"
        );
        assert_eq!(ws.state().last_seq(), seqs.len() as u64);
        for (seq, kind, item) in &reported {
            let rec = &read
                .records
                .get(*seq as usize - 1)
                .unwrap_or_else(|| panic!("round {round}: reported seq {seq} ({kind} {item}) lost"))
                .1;
            assert_eq!(rec.body.kind(), kind, "round {round}: seq {seq}");
            let id = rec
                .body
                .item_id()
                .map_or("-".to_string(), |i| i.to_string());
            assert_eq!(&id, item, "round {round}: seq {seq}");
        }
        // Nothing beyond what was begun: at most the one write the kill interrupted.
        let n = seqs.len() as u64;
        assert!(
            n <= prev.max(last_begin.unwrap_or(0)),
            "round {round}: records nobody began"
        );
        let max_reported = reported.iter().map(|r| r.0).max().unwrap_or(0);
        if let Some(b) = last_begin
            && b > max_reported
            && seqs.len() as u64 >= b
        {
            in_flight_kept += 1;
        }
        drop(ws);
        if kill_on_big {
            std::fs::remove_dir_all(&dir).unwrap();
        } else {
            prev_len = n;
        }
    }
    eprintln!(
        "crash test: {ROUNDS} SIGKILLs ({mid_big_kills} during a multi-MB write), {reported_total} \
         reported appends all found, {torn} torn last lines dropped, {in_flight_kept} interrupted \
         appends that had reached the disk, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
