//! The workbench's one update function and the state no single screen owns: the workspace as a
//! read model the engine's events keep up to date, the job, the runs, the writes on their way to
//! the store and the items held back for their label check, the undo history, the help and the
//! quit question. Each screen is a [`Component`] that owns its own state and dialogs; the App
//! routes actions, events and the store's answers to it and does what it asks ([`Out`]).
//! Model work is never done here, nor any write: starting a job pushes an [`Effect`], a
//! decision a [`Write`], that the event loop hands to the engine.

use std::collections::{HashMap, VecDeque};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::component::{Component, Hold, Out, Shared};
use super::keymap::{self, Context};
use super::read_model::ReadModel;
use super::ready_queue::ReadyQueue;
use super::screens::generate::GenerateState;
use super::screens::review::ReviewState;
use super::screens::runs::{RunInfo, read_runs};
use super::screens::seeds::{SeedWrite, SeedsState};
use super::screens::train::TrainState;
use super::screens::{Screen, evaluate::EvaluateState, rejected::RejectedState};
use super::theme::{self, Theme};
use super::widgets::text_input::EditorState;
use crate::data::item::{ItemId, Source};
use crate::data::record::RecordBody;
use crate::data::state::{Applied, ItemState, Status};
use crate::data::test_set::TestSetChoice;
use crate::engine::{Command, Event, JobId, JobKind, ModelEvent, Write, WriteError, WriteId};
use crate::llm::fetch::FetchEvent;
use crate::pipeline::filters::stages::LABEL_CONSISTENCY;

/// What the event loop must do for the app (the app itself never touches the engine).
// A key press makes a handful of effects, drained at once: boxing the command would cost more
// in every match on it than the unused bytes of the small variants.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Effect {
    Send(Command),
    Cancel,
    Pause(bool),
}

/// A line for the message bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub kind: MessageKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Info,
    Ok,
    Warn,
    Error,
}

/// The model as the status bar tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelStatus {
    /// The engine is starting (or there is none, in tests).
    Starting,
    Fetching(String),
    Loading {
        path: String,
        device: String,
    },
    Ready {
        name: String,
        device: String,
        seconds: f64,
    },
    Failed(String),
}

/// The job the engine is running.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub id: JobId,
    pub kind: JobKind,
    pub total: usize,
    pub done: usize,
    pub tokens_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub paused: bool,
    pub stopping: bool,
}

/// The App's own dialogs (the screens own theirs); one takes every key while open.
#[derive(Debug, Clone)]
pub enum Overlay {
    Help { scroll: u16 },
    ConfirmQuit,
}

impl Overlay {
    pub fn context(&self) -> Context {
        match self {
            Overlay::Help { .. } => Context::Help,
            Overlay::ConfirmQuit => Context::Confirm,
        }
    }
}

/// What to do when the store answers a write: each decision says what it tells the user and
/// where the screen goes, and a failed edit reopens its editor.
#[derive(Debug, Clone)]
pub enum Then {
    /// `verb` is `accepted` or `rejected`.
    Decided {
        id: ItemId,
        verb: &'static str,
        reason: Option<String>,
    },
    Edited {
        id: ItemId,
        editor: EditorState,
    },
    Relabelled {
        id: ItemId,
        label: String,
    },
    Bulk {
        verb: &'static str,
        items: Vec<ItemId>,
    },
    Rescued(ItemId),
    /// `true`: undo; `false`: redo.
    Undone(bool),
    /// Answered by the Seeds screen.
    Seeds(SeedWrite),
}

impl Then {
    /// The screen that answers this write; none for undo and redo, which the App answers (they
    /// may take the user to another screen).
    fn screen(&self) -> Option<Screen> {
        match self {
            Then::Seeds(_) => Some(Screen::Seeds),
            Then::Rescued(_) => Some(Screen::Rejected),
            Then::Decided { .. }
            | Then::Edited { .. }
            | Then::Relabelled { .. }
            | Then::Bulk { .. } => Some(Screen::Review),
            Then::Undone(_) => None,
        }
    }

    /// The items the write decides (not offered for review until it is answered).
    pub(crate) fn items(&self) -> &[ItemId] {
        match self {
            Then::Decided { id, .. }
            | Then::Edited { id, .. }
            | Then::Relabelled { id, .. }
            | Then::Rescued(id) => std::slice::from_ref(id),
            Then::Bulk { items, .. } => items,
            Then::Undone(_) | Then::Seeds(_) => &[],
        }
    }
}

pub struct App {
    /// The workspace as the engine last reported it: what the screens draw.
    pub ws: ReadModel,
    pub screen: Screen,
    pub overlay: Option<Overlay>,
    pub theme: Theme,
    /// Whether the terminal shows 24-bit colour (themes degrade to 16 colours otherwise).
    pub truecolor: bool,
    /// The terminal's height in rows, as last reported (the help scrolls no further than its
    /// last line).
    pub height: u16,
    /// How the workspace is named in the status bar.
    pub workspace_label: String,
    pub model: ModelStatus,
    pub job: Option<JobView>,
    /// A job asked for whose `JobStarted` has not come yet (the model may still be loading).
    pub queued: Option<JobKind>,
    pub message: Option<Message>,
    pub seeds: SeedsState,
    pub generate: GenerateState,
    pub review: ReviewState,
    pub rejected: RejectedState,
    pub train: TrainState,
    pub evaluate: EvaluateState,
    /// The run folders in `<workspace>/runs`, read (never written) by Train and Evaluate.
    pub runs: Vec<RunInfo>,
    /// Items whose label check is running: not offered for review.
    held: HashMap<ItemId, Hold>,
    /// The engine's log lines (newest last, bounded).
    pub log: Vec<String>,
    effects: Vec<Effect>,
    /// Writes asked for, not yet handed to the engine.
    writes: Vec<(WriteId, Write)>,
    /// Writes handed over and not answered yet, oldest first, with what their answer does.
    in_flight: VecDeque<(WriteId, Then)>,
    next_write: WriteId,
    /// Bulk decisions of this session in effect (newest last) and undone (most recently undone
    /// last), each as (its size, the undo or redo depth right after it): `u` / `U` take one back
    /// or bring it back whole while it is what the journal would undo or redo next.
    bulks: Vec<(usize, usize)>,
    undone_bulks: Vec<(usize, usize)>,
    quit: bool,
}

const LOG_LINES: usize = 200;

/// The App's [`Shared`] state, borrowed field by field.
macro_rules! shared {
    ($app:expr) => {
        Shared {
            ws: &$app.ws,
            runs: &$app.runs,
            job: $app.job.as_ref(),
            queued: $app.queued,
            model: &$app.model,
            workspace_label: &$app.workspace_label,
            held: &$app.held,
            in_flight: &$app.in_flight,
            log: &$app.log,
            shingle_words: $app.generate.filters.shingle_words,
        }
    };
}

impl App {
    pub fn new(ws: ReadModel, theme: Theme) -> App {
        let w = &ws;
        let label = w
            .dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| w.dir().display().to_string());
        let warnings: Vec<String> = w.warnings().to_vec();
        let generate = GenerateState::new(w.task());
        let runs = read_runs(&w.runs_dir());
        let empty = w.state().items().is_empty();
        let test_set = TestSetChoice::load(w.dir());
        let unchecked = without_label_check(w);
        let message = warnings.first().map(|first| Message {
            text: if warnings.len() > 1 {
                format!("{first} (and {} more warnings)", warnings.len() - 1)
            } else {
                first.clone()
            },
            kind: MessageKind::Warn,
        });
        let mut app = App {
            ws,
            // A new workspace starts where the work starts; one with items, at Review.
            screen: if empty {
                Screen::Generate
            } else {
                Screen::Review
            },
            overlay: None,
            truecolor: true,
            height: 36,
            theme,
            workspace_label: label,
            model: ModelStatus::Starting,
            job: None,
            queued: None,
            message,
            seeds: SeedsState::default(),
            generate,
            review: ReviewState::default(),
            rejected: RejectedState::default(),
            train: TrainState::default(),
            evaluate: EvaluateState::new(test_set),
            runs,
            held: HashMap::new(),
            log: Vec::new(),
            effects: Vec::new(),
            writes: Vec::new(),
            in_flight: VecDeque::new(),
            next_write: 1,
            bulks: Vec::new(),
            undone_bulks: Vec::new(),
            quit: false,
        };
        if !unchecked.is_empty() {
            // Shown as checking (held back from Review) until the engine reports; the engine
            // runs the command once the model has loaded.
            let n = unchecked.len();
            app.recheck(unchecked);
            if app.message.is_none() {
                app.info(format!(
                    "{n} items never had their label check (an interrupted job): checking them now"
                ));
            }
        }
        app
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// What the event loop must now do for the app, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// The writes the event loop must now hand to the engine's store, in order.
    pub fn take_writes(&mut self) -> Vec<(WriteId, Write)> {
        std::mem::take(&mut self.writes)
    }

    /// Whether a write is asked for or handed over and not answered yet.
    pub fn writing(&self) -> bool {
        !self.writes.is_empty() || !self.in_flight.is_empty()
    }

    /// Asks the store for `write`; `then` runs on its answer. Nothing shows as done before.
    pub(crate) fn write(&mut self, write: Write, then: Then) {
        let id = self.next_write;
        self.next_write += 1;
        self.writes.push((id, write));
        self.in_flight.push_back((id, then));
    }

    /// The store's answer to a write.
    fn written(&mut self, request: WriteId, result: Result<Vec<Applied>, WriteError>) {
        let Some(at) = self.in_flight.iter().position(|(id, _)| *id == request) else {
            return;
        };
        let Some((_, then)) = self.in_flight.remove(at) else {
            return;
        };
        if let (Then::Bulk { items, .. }, Ok(_)) = (&then, &result) {
            // The session's bulk history, so that `u` takes the whole decision back.
            if items.len() > 1 {
                let (done, _) = self.ws.state().history_depths();
                self.bulks.push((items.len(), done));
            }
            self.undone_bulks.clear();
        }
        match (then.screen(), then) {
            (Some(screen), then) => {
                let result = result.as_deref();
                self.route(screen, |c, ws, out| c.answered(then, result, ws, out));
            }
            (None, Then::Undone(undo)) => match result {
                Ok(applied) => self.undone(undo, applied),
                // Nothing to undo or redo is said plainly.
                Err(e) if e.refused => self.warn(e.message.clone()),
                Err(e) => self.report(if undo { "undo" } else { "redo" }, &e),
            },
            (None, _) => {}
        }
    }

    /// An undo (`true`) or redo answered: says what went back and shows where it went.
    fn undone(&mut self, undo: bool, applied: Vec<Applied>) {
        if applied.len() > 1 {
            // A whole bulk decision went back (or came back) in one write.
            let n = applied.len();
            let (done, undone) = self.ws.state().history_depths();
            let (from, to, depth) = if undo {
                (&mut self.bulks, &mut self.undone_bulks, undone)
            } else {
                (&mut self.undone_bulks, &mut self.bulks, done)
            };
            from.pop();
            to.push((n, depth));
            let kind = match applied[0].change {
                crate::data::Change::Undone(kind) | crate::data::Change::Redone(kind) => kind,
                _ => "decision",
            };
            if undo {
                self.ok(format!("undid the bulk {kind} of {n} items (U redoes it)"));
            } else {
                self.ok(format!("redid the bulk {kind} of {n} items"));
            }
            return self.show_changed(kind, applied[0].item_id.clone());
        }
        let Some(applied) = applied.into_iter().next() else {
            return;
        };
        let (what, said) = match applied.change {
            crate::data::Change::Undone(kind) if undo => (kind, "undid"),
            crate::data::Change::Redone(kind) if !undo => (kind, "redid"),
            _ => ("decision", if undo { "undid" } else { "redid" }),
        };
        let id = applied.item_id;
        if undo {
            self.ok(format!("{said} {what} of {id} (U redoes it)"));
        } else {
            self.ok(format!("{said} {what} of {id}"));
        }
        self.show_changed(what, id);
    }

    /// Whether a write about `id` awaits its answer.
    pub fn deciding(&self, id: &ItemId) -> bool {
        self.shared().deciding(id)
    }

    /// Where keys are looked up now.
    pub fn contexts(&self) -> Vec<Context> {
        match (&self.overlay, self.component().dialog()) {
            (Some(o), _) => vec![o.context()],
            (None, Some(dialog)) => vec![dialog],
            (None, None) => vec![Context::of_screen(self.screen), Context::Global],
        }
    }

    /// The current screen.
    pub(crate) fn component(&self) -> &dyn Component {
        match self.screen {
            Screen::Seeds => &self.seeds,
            Screen::Generate => &self.generate,
            Screen::Review => &self.review,
            Screen::Rejected => &self.rejected,
            Screen::Train => &self.train,
            Screen::Evaluate => &self.evaluate,
        }
    }

    /// What every screen reads beside its own state.
    pub(crate) fn shared(&self) -> Shared<'_> {
        shared!(self)
    }

    /// Hands `screen` the shared state and applies what it asks for.
    fn route(
        &mut self,
        screen: Screen,
        f: impl FnOnce(&mut dyn Component, &Shared, &mut Vec<Out>),
    ) {
        // Field by field, so the screen's own state can be borrowed beside it.
        let shared = shared!(self);
        let component: &mut dyn Component = match screen {
            Screen::Seeds => &mut self.seeds,
            Screen::Generate => &mut self.generate,
            Screen::Review => &mut self.review,
            Screen::Rejected => &mut self.rejected,
            Screen::Train => &mut self.train,
            Screen::Evaluate => &mut self.evaluate,
        };
        let mut out = Vec::new();
        f(component, &shared, &mut out);
        for o in out {
            self.apply(o);
        }
    }

    /// Does what a screen asked.
    pub(crate) fn apply(&mut self, o: Out) {
        match o {
            Out::Write(write, then) => self.write(write, then),
            Out::Say(kind, text) => self.say(text, kind),
            Out::Start(kind, command) => {
                self.queued = Some(kind);
                self.effects.push(Effect::Send(command));
            }
            Out::Cancel => {
                if let Some(job) = &mut self.job {
                    job.stopping = true;
                }
                self.effects.push(Effect::Cancel);
            }
            Out::Pause(paused) => {
                if let Some(job) = &mut self.job {
                    job.paused = paused;
                }
                self.effects.push(Effect::Pause(paused));
            }
            Out::Progress {
                done,
                total,
                eta_seconds,
            } => {
                if let Some(j) = &mut self.job {
                    j.done = done.unwrap_or(j.done);
                    j.total = total.unwrap_or(j.total);
                    j.eta_seconds = eta_seconds.or(j.eta_seconds);
                }
            }
            Out::RefreshRuns => self.refresh_runs(),
            Out::Runs(runs) => self.runs = runs,
            Out::Recheck(items) => self.recheck(items),
            Out::SaveTestSet(choice) => {
                if let Err(e) = choice.save(self.ws.dir()) {
                    self.warn(format!("could not remember the test set: {e}"));
                }
            }
        }
    }

    /// A key press: looked up in the keymap, then applied.
    pub fn handle_key(&mut self, key: KeyEvent) {
        // Esc and a key typed right after it reach us as one alt-key (the terminal cannot tell
        // them apart); nothing is bound to alt, so take it as the two keys it most likely was.
        if key.modifiers.contains(KeyModifiers::ALT) && matches!(key.code, KeyCode::Char(_)) {
            self.handle_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
            let mut plain = key;
            plain.modifiers.remove(KeyModifiers::ALT);
            return self.handle_key(plain);
        }
        if let Some(action) = keymap::resolve(&self.contexts(), &key) {
            self.update(action);
        }
    }

    /// A bracketed paste: the text goes into the open editor as typed text, never as keys, so a
    /// pasted `a` or `q` cannot accept or quit. Item texts and seeds may hold several lines; a
    /// reason or a setting is one line, so its line breaks become spaces. Anywhere else the paste
    /// is dropped, and the message line says so.
    pub fn paste(&mut self, text: &str) {
        let mut taken = false;
        if self.overlay.is_none() {
            self.route(self.screen, |c, _, _| taken = c.paste(text));
        }
        if !taken {
            let n = text.chars().count();
            self.info(format!(
                "paste ignored ({n} characters): paste into an editor (e to edit, enter to type a value)"
            ));
        }
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.say(text, MessageKind::Info);
    }
    pub fn ok(&mut self, text: impl Into<String>) {
        self.say(text, MessageKind::Ok);
    }
    pub fn warn(&mut self, text: impl Into<String>) {
        self.say(text, MessageKind::Warn);
    }
    pub fn error(&mut self, text: impl Into<String>) {
        self.say(text, MessageKind::Error);
    }
    fn say(&mut self, text: impl Into<String>, kind: MessageKind) {
        self.message = Some(Message {
            text: text.into(),
            kind,
        });
    }

    /// A refused write for the message bar: refusals are warnings, the rest errors.
    pub(crate) fn report(&mut self, what: &str, e: &WriteError) {
        if e.refused {
            self.warn(format!("{what}: {}", e.message));
        } else {
            self.error(format!("{what} failed, nothing was saved: {}", e.message));
        }
    }

    /// The only place state changes.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::Engine(event) => self.on_engine(*event),
            Action::Resize { height, .. } => {
                self.height = height;
                if let Some(Overlay::Help { scroll }) = &mut self.overlay {
                    *scroll = (*scroll).min(super::help::max_scroll(height));
                }
            }
            action if self.overlay.is_some() => self.on_overlay(action),
            action if self.component().dialog().is_some() => {
                self.route(self.screen, |c, ws, out| c.handle(action, ws, out))
            }
            action => self.on_screen(action),
        }
    }

    fn on_screen(&mut self, action: Action) {
        match action {
            Action::NextScreen => self.show(self.screen.next()),
            Action::PrevScreen => self.show(self.screen.prev()),
            Action::GoTo(s) => self.show(s),
            Action::ToggleHelp => {
                let scroll = super::help::start_of(Context::of_screen(self.screen));
                let scroll = scroll.min(super::help::max_scroll(self.height));
                self.overlay = Some(Overlay::Help { scroll });
            }
            Action::Quit => {
                if self.job.is_some() || self.queued.is_some() {
                    self.overlay = Some(Overlay::ConfirmQuit);
                } else {
                    self.quit = true;
                }
            }
            Action::Interrupt => match &mut self.job {
                Some(job) => {
                    job.stopping = true;
                    let kind = job.kind.name();
                    self.effects.push(Effect::Cancel);
                    self.info(format!("stopping the {kind} job…"));
                }
                None => self.quit = true,
            },
            Action::Undo => {
                let n = group_on_top(self.bulks.last(), self.ws.state().history_depths().0);
                self.write(
                    Write::Records(vec![RecordBody::Undo {}; n]),
                    Then::Undone(true),
                )
            }
            Action::Redo => {
                let n = group_on_top(self.undone_bulks.last(), self.ws.state().history_depths().1);
                self.write(
                    Write::Records(vec![RecordBody::Redo {}; n]),
                    Then::Undone(false),
                )
            }
            Action::CycleTheme => self.cycle_theme(),
            other => self.route(self.screen, |c, ws, out| c.handle(other, ws, out)),
        }
    }

    /// Switches to `screen`. The Rejected list pins its selection to the item then on it, so
    /// rejections that arrive while the user reads do not move it.
    fn show(&mut self, screen: Screen) {
        self.screen = screen;
        if screen == Screen::Rejected {
            self.rejected.pin(&self.ws);
        }
    }

    fn on_overlay(&mut self, action: Action) {
        let Some(overlay) = self.overlay.take() else {
            return;
        };
        // Each handler puts the overlay back when it stays open.
        match overlay {
            Overlay::Help { scroll } => {
                let scroll = match action {
                    Action::Up => scroll.saturating_sub(1),
                    Action::Down => scroll.saturating_add(1),
                    Action::PageUp => scroll.saturating_sub(10),
                    Action::PageDown => scroll.saturating_add(10),
                    Action::Cancel | Action::ToggleHelp => return,
                    _ => scroll,
                };
                let scroll = scroll.min(super::help::max_scroll(self.height));
                self.overlay = Some(Overlay::Help { scroll });
            }
            Overlay::ConfirmQuit => match action {
                Action::Yes => {
                    if self.job.is_some() {
                        self.effects.push(Effect::Cancel);
                    }
                    self.quit = true;
                }
                Action::No => {}
                _ => self.overlay = Some(Overlay::ConfirmQuit),
            },
        }
    }

    fn on_engine(&mut self, event: Event) {
        // What the screens hear, after the App has applied it to what it owns: the job's own
        // events (the workspace's changes reach them through the read model).
        let heard = match &event {
            Event::Journal(_) | Event::Seeds(_) | Event::Written { .. } | Event::Model(_) => None,
            e => Some(e.clone()),
        };
        self.apply_event(event);
        if let Some(event) = heard {
            for screen in Screen::ALL {
                self.route(screen, |c, shared, out| c.on_event(&event, shared, out));
            }
        }
    }

    fn apply_event(&mut self, event: Event) {
        match event {
            Event::Model(m) => self.on_model(m),
            Event::JobStarted { job, kind, total } => {
                self.queued = None;
                self.job = Some(JobView {
                    id: job,
                    kind,
                    total,
                    done: 0,
                    tokens_per_second: 0.0,
                    eta_seconds: None,
                    paused: false,
                    stopping: false,
                });
            }
            Event::SequenceStarted { .. }
            | Event::Delta { .. }
            | Event::ItemAdded { .. }
            | Event::Verdict { .. }
            | Event::JudgeProgress { .. }
            | Event::JudgeChosen { .. } => {}
            Event::Journal(records) => self.ws.apply(records),
            Event::Seeds(seeds) => self.ws.set_seeds(seeds),
            Event::Written { request, result } => self.written(request, result),
            Event::AwaitingLabelCheck { job, items } => {
                self.held
                    .extend(items.into_iter().map(|id| (id, Hold::Job(job))));
            }
            Event::LabelChecked { items, .. } => {
                for id in &items {
                    self.held.remove(id);
                }
            }
            Event::Progress {
                done,
                total,
                tokens_per_second,
                eta_seconds,
                ..
            } => {
                if let Some(j) = &mut self.job {
                    j.done = done;
                    j.total = total;
                    j.tokens_per_second = tokens_per_second;
                    j.eta_seconds = eta_seconds;
                }
            }
            Event::Train { .. } | Event::EvalStarted { .. } => {}
            Event::EvalSaved { summary, .. } => {
                // Each result shows up in the comparison as soon as it is saved.
                self.reload_runs();
                self.ok(summary);
            }
            Event::Log(line) => {
                self.log.push(line);
                if self.log.len() > LOG_LINES {
                    self.log.remove(0);
                }
            }
            Event::JobFinished { job, kind, summary } => {
                self.job_ended(job, kind);
                self.ok(format!("{} done: {summary}", kind.name()));
            }
            Event::JobCancelled { job, kind, summary } => {
                self.job_ended(job, kind);
                self.warn(format!("{} stopped: {summary}", kind.name()));
            }
            Event::JobFailed { job, kind, error } => {
                self.job_ended(job, kind);
                self.error(format!("{} failed: {error}", kind.name()));
            }
        }
    }

    fn job_ended(&mut self, job: JobId, kind: JobKind) {
        if self.job.as_ref().is_some_and(|j| j.kind == kind) {
            self.job = None;
        }
        if self.queued == Some(kind) {
            self.queued = None;
        }
        // What the job held for its label check is released with it (checked or not).
        self.held.retain(|_, h| match h {
            Hold::Job(j) => *j != job,
            Hold::Asked => kind != JobKind::Recheck,
        });
        // The run it wrote joins the runs (a student beside its teacher).
        if matches!(kind, JobKind::Train | JobKind::Evaluate | JobKind::Distil) {
            self.reload_runs();
        }
    }

    fn on_model(&mut self, m: ModelEvent) {
        self.model = match m {
            ModelEvent::Fetching(f) => ModelStatus::Fetching(match f {
                FetchEvent::Pip(line) => format!("pip: {line}"),
                FetchEvent::Extracting { done, total } => {
                    format!("extracting {}%", done * 100 / total.max(1))
                }
                FetchEvent::Verifying => "verifying".into(),
                FetchEvent::Done(p) => format!("fetched {}", p.display()),
            }),
            ModelEvent::Loading { path, device } => ModelStatus::Loading { path, device },
            ModelEvent::Ready {
                device,
                name,
                seconds,
            } => ModelStatus::Ready {
                name,
                device,
                seconds,
            },
            ModelEvent::Failed(e) => {
                self.error(format!("the model could not be loaded: {e}"));
                ModelStatus::Failed(e)
            }
        };
    }

    /// Whether a pending item can be shown for review (see [`Shared::is_ready`]).
    pub fn is_ready(&self, it: &ItemState) -> bool {
        self.shared().is_ready(it)
    }

    /// The items ready for review.
    pub fn ready_queue(&self) -> ReadyQueue<'_> {
        self.shared().ready_queue()
    }

    /// Whether `id` waits for its label check.
    pub fn is_held(&self, id: &ItemId) -> bool {
        self.shared().is_held(id)
    }

    /// Whether `id` waits for a check asked for again (after an edit, a relabel, a restart).
    pub fn is_rechecking(&self, id: &ItemId) -> bool {
        self.shared().is_rechecking(id)
    }

    /// The item Review shows.
    pub fn review_target(&self) -> Option<ItemId> {
        self.review.target(&self.shared())
    }

    /// After an undo or redo of a `kind` decision: an item whose text or label changed back has
    /// its filters run again and is shown on Review (its verdicts are about to change); any
    /// other goes where its status puts it.
    fn show_changed(&mut self, kind: &str, id: ItemId) {
        if matches!(kind, "edit" | "relabel") {
            self.recheck(vec![id.clone()]);
            self.screen = Screen::Review;
            self.review.show(id);
        } else {
            self.jump_to(id);
        }
    }

    /// Shows the item an undo or redo touched: filter-rejected ones on Rejected, others on
    /// Review.
    pub(crate) fn jump_to(&mut self, id: ItemId) {
        let status = self.ws.state().get(id.as_str()).map(|i| i.status());
        match status {
            Some(Status::AutoRejected) => {
                self.screen = Screen::Rejected;
                self.rejected.select(&self.ws, &id);
            }
            Some(_) => {
                self.screen = Screen::Review;
                self.review.show(id);
            }
            None => {}
        }
    }

    /// Asks the engine to run the filters again on items whose text or label changed.
    pub(crate) fn recheck(&mut self, items: Vec<ItemId>) {
        self.held
            .extend(items.iter().map(|id| (id.clone(), Hold::Asked)));
        self.effects.push(Effect::Send(Command::Recheck {
            items,
            filters: self.generate.filters.clone(),
        }));
    }

    fn cycle_theme(&mut self) {
        let user = theme::user_dir();
        let names = theme::available(user.as_deref());
        let at = names.iter().position(|n| *n == self.theme.name);
        let next = names[at.map_or(0, |i| (i + 1) % names.len())].clone();
        match theme::load(&next, user.as_deref(), self.truecolor) {
            Ok(t) => {
                self.theme = t;
                self.info(format!("theme: {next} (--theme {next} to start with it)"));
            }
            Err(e) => self.error(e.to_string()),
        }
    }

    /// Reads the run folders again, quietly (a job just wrote one).
    pub(crate) fn reload_runs(&mut self) {
        let dir = self.ws.runs_dir();
        self.runs = read_runs(&dir);
    }

    /// Reads the run folders again and says how many there are (`r`).
    pub(crate) fn refresh_runs(&mut self) {
        self.reload_runs();
        let dir = self.ws.runs_dir();
        self.info(format!(
            "{} run folder(s) in {}",
            self.runs.len(),
            dir.display()
        ));
    }

    /// The counts shown on the tabs: (ready to review, rejected).
    pub fn tab_counts(&self) -> (usize, usize) {
        let t = self.ws.state().totals();
        (self.ready_queue().len(), t.rejected + t.auto_rejected)
    }
}

/// Applies an editing action to `editor`. `None`: still editing; `Some(true)`: Enter;
/// `Some(false)`: Esc.
pub(crate) fn edit_text(editor: &mut EditorState, action: &Action) -> Option<bool> {
    match action {
        Action::Input(c) => editor.insert(*c),
        Action::Backspace => editor.backspace(),
        Action::DeleteChar => editor.delete(),
        Action::CursorLeft => editor.left(),
        Action::CursorRight => editor.right(),
        Action::CursorHome => editor.home(),
        Action::CursorEnd => editor.end(),
        Action::ClearLine => editor.clear(),
        Action::Submit => return Some(true),
        Action::Cancel => return Some(false),
        _ => {}
    }
    None
}

/// Generated items still pending whose label check never reported: the job that wrote them was
/// killed or failed between an item and its verdict. Offered as they are, they would reach
/// Review unchecked. Items a cheap stage rejected never get a label check, so they are left out.
fn without_label_check(ws: &ReadModel) -> Vec<ItemId> {
    ws.state()
        .items()
        .iter()
        .filter(|it| it.source() == Source::Generated && it.status() == Status::Pending)
        .filter(|it| it.failed_verdicts().next().is_none())
        .filter(|it| !it.verdicts().iter().any(|v| v.stage == LABEL_CONSISTENCY))
        .map(|it| it.id().clone())
        .collect()
}

/// Label names of the task, in order.
pub(crate) fn label_names(ws: &ReadModel) -> Vec<String> {
    ws.task().labels.iter().map(|l| l.name.clone()).collect()
}

/// A map from label to its colour index, for drawing.
pub(crate) fn label_index(labels: &[String], label: &str) -> Option<usize> {
    labels.iter().position(|l| l == label)
}

/// How many undo (or redo) steps take a bulk decision back whole: its size while the history is
/// as deep as right after it (nothing decided, undone or redone since), else one.
fn group_on_top(group: Option<&(usize, usize)>, depth: usize) -> usize {
    match group {
        Some(&(n, at)) if at == depth => n,
        _ => 1,
    }
}
