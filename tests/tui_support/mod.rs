//! Shared by the workbench tests: a workspace in a temp folder holding generated items with
//! real filter verdicts (the filter functions themselves, a made-up classifier distribution),
//! an `App` over it with the engine's store writing its decisions, key presses, and rendering
//! to a `TestBackend`. No model is needed.
#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use seedforge::data::item::{Item, ItemId, Source};
use seedforge::data::record::RecordBody;
use seedforge::data::task::Task;
use seedforge::data::workspace::Workspace;
use seedforge::engine::{Event, ModelEvent, Sink, Store};
use seedforge::pipeline::classify::Prediction;
use seedforge::pipeline::filters::stages::label_consistency;
use seedforge::pipeline::filters::{FilterSettings, Filters};
use seedforge::pipeline::prompt::Templates;
use seedforge::tui::action::Action;
use seedforge::tui::app::App;
use seedforge::tui::read_model::ReadModel;
use seedforge::tui::theme::Theme;
use tokio::sync::mpsc::UnboundedReceiver;

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub ws: Arc<Mutex<Workspace>>,
}

/// The items of the fixture: (text, label, classifier's p(label) or None when a cheap filter
/// is expected to reject it).
pub const ITEMS: [(&str, &str, Option<f64>); 7] = [
    (
        "A gentle, funny film with a cast that clearly enjoyed every scene.",
        "positive",
        Some(0.91),
    ),
    (
        "The jokes never land and the second half drags on forever.",
        "negative",
        Some(0.84),
    ),
    (
        "Not my kind of movie, honestly a waste of a free evening.",
        "positive",
        Some(0.23),
    ),
    (
        "The plot wanders for two hours and never finds anything worth saying at all.",
        "negative",
        None,
    ),
    ("Great film.", "positive", None),
    (
        "Flat characters, clumsy dialogue and an ending that makes no sense.",
        "negative",
        Some(0.66),
    ),
    (
        "Clever, tender and beautifully acted, I want to see it again tonight.",
        "positive",
        Some(0.97),
    ),
];

pub fn prediction(task: &Task, label: &str, p: f64) -> Prediction {
    let probs: Vec<(String, f64)> = task
        .labels
        .iter()
        .map(|l| {
            let q = if l.name == label { p } else { 1.0 - p };
            (l.name.clone(), q)
        })
        .collect();
    let best = probs
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(l, _)| l.clone())
        .unwrap();
    Prediction {
        label: best,
        log_likelihoods: probs.iter().map(|(_, q)| q.ln()).collect(),
        judge: None,
        probs,
    }
}

/// A demo workspace holding [`ITEMS`], each with the verdicts the pipeline would give it.
pub fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo-ws");
    let mut ws = Workspace::create(&dir, &Task::demo(), &[]).unwrap();
    let task = ws.task().clone();
    let templates = Templates::bundled();
    let mut filters = Filters::new(&task, FilterSettings::default());
    for (i, (text, label, p)) in ITEMS.iter().enumerate() {
        let def = task.labels.iter().find(|l| l.name == *label).unwrap();
        let seeds: Vec<&str> = task.seeds_of(label).map(|s| s.text.as_str()).collect();
        let mut item = Item::new(*text, *label, Source::Generated);
        item.raw = Some(format!(" {text}\n"));
        item.prompt = Some(templates.render_generate(&task, def, &seeds, &[]).unwrap());
        item.meta.insert("request".into(), serde_json::json!(i));
        item.meta.insert("finish".into(), serde_json::json!("stop"));
        item.meta.insert("new_tokens".into(), serde_json::json!(17));
        item.meta
            .insert("prompt_tokens".into(), serde_json::json!(84));
        item.meta.insert("seconds".into(), serde_json::json!(1.25));
        let id = ws.add_item(item).unwrap();
        let mut verdicts = filters.cheap(id.as_str(), text, None);
        let cheap_pass = verdicts.iter().all(|v| v.pass);
        assert_eq!(cheap_pass, p.is_some(), "fixture item {i}: {verdicts:?}");
        if let Some(p) = p {
            verdicts.push(label_consistency(0.0, label, &prediction(&task, label, *p)));
        }
        ws.append_all(
            verdicts
                .into_iter()
                .map(|verdict| RecordBody::Verdict {
                    item_id: id.clone(),
                    verdict,
                })
                .collect(),
        )
        .unwrap();
    }
    Fixture {
        tmp,
        dir,
        ws: Arc::new(Mutex::new(ws)),
    }
}

/// An app and the engine's store over one workspace: its writes are carried out and the
/// store's events fed back to it after every key, as the event loop does (synchronously here).
pub struct TestApp {
    pub app: App,
    store: Store,
    events: UnboundedReceiver<Event>,
    /// The number of records of each journal append the app was told of, in order (one
    /// append is one write and one fsync).
    pub appends: Vec<usize>,
}

impl Deref for TestApp {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut App {
        &mut self.app
    }
}

impl TestApp {
    /// Hands the app's writes to the store and its events (the journal's too) to the app, until
    /// every write is answered.
    pub fn pump(&mut self) {
        for _ in 0..100 {
            for (request, write) in self.app.take_writes() {
                self.store.write(request, write);
            }
            while let Ok(e) = self.events.try_recv() {
                if let Event::Journal(records) = &e {
                    self.appends.push(records.len());
                }
                self.app.update(Action::Engine(Box::new(e)));
            }
            if !self.app.writing() {
                return;
            }
        }
        panic!("a write was never answered");
    }
}

/// An app over `ws` with the store as its only writer (the model not reported).
pub fn app_over(ws: &Arc<Mutex<Workspace>>) -> TestApp {
    let read = ReadModel::of(&ws.lock().unwrap());
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let store = Store::new(ws.clone(), Sink::new(tx));
    TestApp {
        app: App::new(read, Theme::dark()),
        store,
        events,
        appends: Vec::new(),
    }
}

/// An app over the fixture, the model reported ready (as the engine would).
pub fn app(f: &Fixture) -> TestApp {
    let mut app = app_over(&f.ws);
    app.update(Action::Engine(Box::new(Event::Model(ModelEvent::Ready {
        device: "cpu (flex)".into(),
        name: "SmolLM2-135M-Instruct".into(),
        seconds: 0.8,
    }))));
    app
}

/// What takes key presses: a [`TestApp`] (its writes carried out after each key) or a bare
/// [`App`] fed by a real engine.
pub trait Keys {
    fn key(&mut self, key: KeyEvent);
}

impl Keys for App {
    fn key(&mut self, key: KeyEvent) {
        self.handle_key(key);
    }
}

impl Keys for TestApp {
    fn key(&mut self, key: KeyEvent) {
        self.app.handle_key(key);
        self.pump();
    }
}

pub fn id(n: u32) -> ItemId {
    ItemId(format!("g-{n:06}"))
}

/// A key as the terminal sends it (`^r` is ctrl-r; names: enter, esc, tab, backtab, up, down,
/// left, right, backspace, home, end).
pub fn key(k: &str) -> KeyEvent {
    let code = match k {
        "enter" => KeyCode::Enter,
        "esc" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backtab" => return KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT),
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "backspace" => KeyCode::Backspace,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "space" => KeyCode::Char(' '),
        k if k.starts_with('^') => {
            let c = k[1..].chars().next().unwrap();
            return KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
        }
        k => {
            let c = k.chars().next().unwrap();
            let m = if c.is_uppercase() {
                KeyModifiers::SHIFT
            } else {
                KeyModifiers::NONE
            };
            return KeyEvent::new(KeyCode::Char(c), m);
        }
    };
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Presses keys given as a space-separated list (`"a x u"`, `"e ^u N e w enter"`).
pub fn press(app: &mut impl Keys, keys: &str) {
    for k in keys.split(' ').filter(|k| !k.is_empty()) {
        app.key(key(k));
    }
}

/// Types text into the open editor.
pub fn type_text(app: &mut impl Keys, text: &str) {
    for c in text.chars() {
        app.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
}

/// The app drawn on a `width`×`height` test terminal, as text.
pub fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|f| seedforge::tui::view::draw(f, app))
        .unwrap();
    terminal.backend().to_string()
}

/// The journal's record types, in order.
pub fn journal_kinds(f: &Fixture) -> Vec<String> {
    let text = std::fs::read_to_string(f.dir.join("journal.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["type"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The journal's decision records (no items or verdicts), as `type item_id` strings.
pub fn journal_decisions(f: &Fixture) -> Vec<String> {
    let text = std::fs::read_to_string(f.dir.join("journal.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let kind = v["type"].as_str().unwrap();
            if kind == "item_added" || kind == "verdict" {
                return None;
            }
            Some(match v["item_id"].as_str() {
                Some(id) => format!("{kind} {id}"),
                None => kind.to_string(),
            })
        })
        .collect()
}

/// The smallest adapter that `peft::check_adapter` accepts in `dir`: PEFT's config and one
/// `lora_A` tensor. The writer picker reads only that it is complete, not what it holds.
pub fn write_adapter(dir: &std::path::Path) {
    std::fs::write(
        dir.join(seedforge::train::peft::CONFIG_FILE),
        r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}"#,
    )
    .unwrap();
    let data = vec![0u8; 2 * 4 * 4];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 4], &data).unwrap();
    let bytes = safetensors::serialize(
        [(
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
            view,
        )],
        None,
    )
    .unwrap();
    std::fs::write(dir.join(seedforge::train::peft::WEIGHTS_FILE), bytes).unwrap();
}

/// Adds a generated item with the cheap stages' verdicts only, as a running job writes them
/// before the label check reports. Returns its id and whether every cheap stage passed.
pub fn add_with_cheap_verdicts(f: &Fixture, text: &str, label: &str) -> (ItemId, bool) {
    let mut ws = f.ws.lock().unwrap();
    let task = ws.task().clone();
    let id = ws
        .add_item(Item::new(text, label, Source::Generated))
        .unwrap();
    let verdicts = Filters::new(&task, FilterSettings::default()).cheap(id.as_str(), text, None);
    let passed = verdicts.iter().all(|v| v.pass);
    for verdict in verdicts {
        ws.add_verdict(&id, verdict).unwrap();
    }
    (id, passed)
}

/// A trainer event from the fields a test cares about (`{"event": "step", "step": 3, "loss":
/// 1.2}`); the rest take plausible values, so the event is one the trainer could have sent.
pub fn train_event(fields: serde_json::Value) -> seedforge::train::metrics::TrainEvent {
    let mut v = serde_json::json!({
        "train_examples": 6, "val_examples": 2, "epochs": 4, "steps_per_epoch": 10,
        "total_steps": 40, "trainable_params": 16384, "device": "cpu",
        "step": 1, "epoch": 0, "loss": 1.0, "lr": 2e-4, "grad_norm": 0.5, "step_time_s": 0.5,
        "tokens": 300, "tokens_per_s": 600.0, "elapsed_s": 1.0,
        "train_loss": 1.0, "val_loss": null, "val_accuracy": null, "best": true,
        "eval_time_s": 0.1, "reason": "completed", "steps": 1, "best_epoch": null,
        "best_val_loss": null, "best_val_accuracy": null
    });
    for (k, x) in fields.as_object().expect("an object of fields") {
        v[k] = x.clone();
    }
    serde_json::from_value(v).expect("a trainer event")
}

/// `events` as the lines of a `metrics.jsonl`.
pub fn metrics_jsonl(events: &[serde_json::Value]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(&train_event(e.clone())).unwrap() + "\n")
        .collect()
}
