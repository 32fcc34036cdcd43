//! Generate: the settings (editable), start / stop / pause, the sequences being written shown
//! token by token, finished items listed with their filter verdicts as they arrive, and the
//! job's progress, tokens/s and ETA.

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Wrap};

use super::generate_form::Setting;
use super::rejected::stage_label;
use crate::data::item::ItemId;
use crate::data::state::Status;
use crate::data::task::Task;
use crate::engine::{Command, Event, JobKind};
use crate::pipeline::filters::FilterSettings;
use crate::pipeline::generate::{GenerateSettings, TEACHER_TEMPERATURE};
use crate::pipeline::prompt::Templates;
use crate::train::trainer::Objective;
use crate::tui::action::Action;
use crate::tui::app::{ModelStatus, label_index, label_names};
use crate::tui::component::{Component, Out, Shared};
use crate::tui::keymap::Context;
use crate::tui::theme::Theme;
use crate::tui::widgets::field_editor::{Edited, FieldEditor};
use crate::tui::widgets::form::{Form, FormState};
use crate::tui::widgets::text::{one_line, tail, truncate};

/// A sequence being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub label: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct GenerateState {
    pub settings: GenerateSettings,
    pub filters: FilterSettings,
    pub form: FormState,
    /// Sequences being written, by request index.
    pub streams: BTreeMap<u64, Stream>,
    /// Items written in this session, oldest first.
    pub finished: Vec<ItemId>,
    /// The label check's judge for the latest run, and how it was chosen.
    pub judge_note: Option<String>,
    pub show_template: bool,
    /// Where the generation template comes from, and its text (or why it cannot be read).
    pub template_source: String,
    pub template_text: Result<String, String>,
    /// The run whose adapter writes (`None`: the base model), and whether it is a teacher.
    pub writer: Option<Writer>,
    /// Unlabelled texts for the annotate mode (A), as typed.
    pub annotate_file: String,
    pub min_confidence: f64,
    /// What the last check of the chosen server (`settings.remote`) found, filled in by a
    /// thread of its own so the screen never waits on the network.
    pub server_state: std::sync::Arc<ServerProbe>,
    /// Typing a value for one of the settings.
    editor: Option<FieldEditor>,
}

/// The chosen server's state, and whether it changed since the screen last drew it.
#[derive(Debug, Default)]
pub struct ServerProbe {
    state: std::sync::Mutex<ServerState>,
    news: std::sync::atomic::AtomicBool,
}

impl ServerProbe {
    pub fn get(&self) -> ServerState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, state: ServerState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.news.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the state changed since the last call (the screen is drawn again then).
    pub fn take_news(&self) -> bool {
        self.news.swap(false, std::sync::atomic::Ordering::AcqRel)
    }
}

/// A configured server as the writer row shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ServerState {
    #[default]
    Checking,
    /// It answered and serves this model.
    Ready(String),
    /// Why it cannot be used now.
    Unreachable(String),
}

impl ServerState {
    /// Checks `settings` on a thread of its own (one quick try, no retries) into `state`.
    pub fn probe(
        settings: &crate::llm::remote::RemoteSettings,
        probe: &std::sync::Arc<ServerProbe>,
    ) {
        let mut quick = settings.clone();
        quick.retries = 0;
        quick.timeout_s = 3.0;
        quick.connect_timeout_s = 2.0;
        let probe = probe.clone();
        probe.set(ServerState::Checking);
        let _ = std::thread::Builder::new()
            .name("seedforge-probe".into())
            .spawn(move || {
                let found = match crate::llm::remote::Remote::connect(quick) {
                    Ok(r) => ServerState::Ready(r.client().model().to_string()),
                    Err(e) => ServerState::Unreachable(e.message),
                };
                probe.set(found);
            });
    }
}

/// A run folder whose LoRA adapter writes the examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub run: String,
    pub dir: std::path::PathBuf,
    /// Trained by `seedforge teacher` (or the Train screen's teacher mode) to write examples from
    /// the bare instruction: its prompt shows no seeds, and it samples at 0.8 by default.
    pub teacher: bool,
}

/// The teacher paper keeps an annotated text when the model is this sure of its label.
pub const DEFAULT_MIN_CONFIDENCE: f64 = 0.6;
impl GenerateState {
    pub fn new(task: &Task) -> Self {
        let (template_source, template_text) = match Templates::for_task(task) {
            Ok(t) => (t.generate.source.to_string(), Ok(t.generate.text)),
            Err(e) => ("(unreadable)".to_string(), Err(e.to_string())),
        };
        GenerateState {
            settings: GenerateSettings::default(),
            filters: FilterSettings::default(),
            form: FormState::default(),
            streams: BTreeMap::new(),
            finished: Vec::new(),
            judge_note: None,
            show_template: false,
            template_source,
            template_text,
            writer: None,
            annotate_file: String::new(),
            min_confidence: DEFAULT_MIN_CONFIDENCE,
            server_state: Default::default(),
            editor: None,
        }
    }

    pub fn open_field(&self) -> Option<&FieldEditor> {
        self.editor.as_ref()
    }

    /// Chooses who writes. A teacher writes from the bare instruction at the teacher paper's
    /// temperature; going back to a plain writer restores the seeds and the method's 1.0 (a
    /// temperature the user set by hand is kept).
    pub fn set_writer(&mut self, writer: Option<Writer>) {
        let was_teacher = self.writer.as_ref().is_some_and(|w| w.teacher);
        let teacher = writer.as_ref().is_some_and(|w| w.teacher);
        let s = &mut self.settings;
        s.seeds_in_prompt = !teacher;
        let default_for = |t: bool| if t { TEACHER_TEMPERATURE } else { 1.0 };
        if teacher != was_teacher && s.sampling.temperature == default_for(was_teacher) {
            s.sampling.temperature = default_for(teacher);
        }
        self.writer = writer;
    }
}

impl Component for GenerateState {
    fn dialog(&self) -> Option<Context> {
        self.editor.as_ref().map(|_| Context::TextInput)
    }

    fn handle(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        match self.editor.take() {
            Some(f) => match f.handle(&action) {
                Edited::Open(f) => self.editor = Some(f),
                Edited::Cancelled => {}
                Edited::Submitted(f) => {
                    if let Err(e) = self.set_field(f.field, &f.editor.text()) {
                        out.push(Out::error(e));
                        self.editor = Some(f);
                    }
                }
            },
            None => self.on_screen(action, shared, out),
        }
    }

    fn on_event(&mut self, event: &Event, _shared: &Shared, _out: &mut Vec<Out>) {
        match event {
            Event::JobStarted {
                kind: JobKind::Generate,
                ..
            } => self.streams.clear(),
            Event::SequenceStarted { index, label, .. } => {
                let stream = Stream {
                    label: label.clone(),
                    text: String::new(),
                };
                self.streams.insert(*index, stream);
            }
            Event::Delta { index, text, .. } => {
                if let Some(s) = self.streams.get_mut(index) {
                    s.text.push_str(text);
                }
            }
            Event::ItemAdded { index, item, .. } => {
                self.streams.remove(index);
                self.finished.push(item.clone());
            }
            Event::JudgeProgress { text, .. } => self.judge_note = Some(text.clone()),
            Event::JudgeChosen { summary, .. } => self.judge_note = Some(summary.clone()),
            Event::JobFinished {
                kind: JobKind::Generate,
                ..
            }
            | Event::JobCancelled {
                kind: JobKind::Generate,
                ..
            }
            | Event::JobFailed {
                kind: JobKind::Generate,
                ..
            } => self.streams.clear(),
            _ => {}
        }
    }

    fn paste(&mut self, text: &str) -> bool {
        match &mut self.editor {
            Some(f) => {
                f.paste(text);
                true
            }
            None => false,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme, shared: &Shared) {
        draw(frame, area, theme, self, shared)
    }

    fn draw_dialog(&self, frame: &mut Frame, theme: &Theme, _shared: &Shared) {
        if let Some(f) = &self.editor {
            f.draw(frame, theme, &Setting::ALL.map(|s| s.name()))
        }
    }
}

impl GenerateState {
    fn on_screen(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        let n = Setting::ALL.len();
        let selected = Setting::at(self.form.selected);
        match action {
            Action::Up => self.form.up(),
            Action::Down => self.form.down(n),
            Action::Decrease | Action::Increase => {
                let up = matches!(action, Action::Increase);
                match selected {
                    Some(Setting::Writer) => self.cycle_writer(up, shared, out),
                    Some(Setting::Template) => self.show_template = !self.show_template,
                    Some(setting) => self.adjust(setting, up),
                    None => {}
                }
            }
            Action::EditField => match selected {
                Some(Setting::Template) => self.show_template = !self.show_template,
                Some(Setting::Writer) => self.cycle_writer(true, shared, out),
                Some(setting) => self.editor = Some(FieldEditor::new(setting.row(), "")),
                None => {}
            },
            Action::ToggleTemplate => self.show_template = !self.show_template,
            Action::Start => self.start_generation(shared, out),
            Action::Annotate => self.start_annotation(shared, out),
            Action::Stop => match shared.job {
                Some(job) if matches!(job.kind, JobKind::Generate | JobKind::Annotate) => {
                    out.push(Out::Cancel);
                    out.push(Out::info("stopping: the items written so far are kept"));
                }
                _ => out.push(Out::info("no generation is running")),
            },
            Action::Pause => match shared.job {
                Some(job) if matches!(job.kind, JobKind::Generate | JobKind::Annotate) => {
                    let paused = !job.paused;
                    out.push(Out::Pause(paused));
                    out.push(Out::info(if paused {
                        "paused (p resumes)"
                    } else {
                        "resumed"
                    }));
                }
                _ => out.push(Out::info("no generation is running")),
            },
            _ => {}
        }
    }

    /// The next (or previous) writer: the base model, the servers of config.toml, then every
    /// run with an adapter, newest first.
    fn cycle_writer(&mut self, forward: bool, shared: &Shared, out: &mut Vec<Out>) {
        // Read now: a run may have finished training since the list was last read.
        let runs = super::runs::read_runs(&shared.ws.runs_dir());
        let mut choices: Vec<WriterChoice> = vec![WriterChoice::Base];
        match crate::llm::remote::endpoints::configured() {
            Ok(servers) => choices.extend(servers.into_iter().map(WriterChoice::Server)),
            Err(e) => out.push(Out::warn(format!("{e:#}"))),
        }
        choices.extend(runs.iter().filter_map(|r| {
            r.adapter.map(|objective| {
                WriterChoice::Run(Writer {
                    run: r.name.clone(),
                    dir: r.dir.clone(),
                    teacher: objective == Objective::Generate,
                })
            })
        }));
        let broken: Vec<String> = runs
            .iter()
            .filter_map(|r| r.adapter_error.as_ref().map(|e| format!("{}: {e}", r.name)))
            .collect();
        out.push(Out::Runs(runs));
        if choices.len() == 1 {
            out.push(match broken.first() {
                Some(e) => Out::warn(format!("no usable adapter; not offered: {e}")),
                None => Out::info(
                    "no run with an adapter yet (`seedforge teacher` trains a teacher) and no \
                     server in config.toml",
                ),
            });
            return;
        }
        let now = choices
            .iter()
            .position(|c| match (c, &self.settings.remote, &self.writer) {
                (WriterChoice::Server(s), Some(r), _) => s.endpoint == r.endpoint,
                (WriterChoice::Run(w), None, Some(cur)) => w.dir == cur.dir,
                (WriterChoice::Base, None, None) => true,
                _ => false,
            })
            .unwrap_or(0);
        let n = choices.len();
        let next = if forward {
            (now + 1) % n
        } else {
            (now + n - 1) % n
        };
        match choices.swap_remove(next) {
            WriterChoice::Base => {
                self.settings.set_remote(None);
                self.set_writer(None);
            }
            WriterChoice::Server(server) => {
                self.set_writer(None);
                ServerState::probe(&server, &self.server_state);
                self.settings.set_remote(Some(Box::new(server)));
            }
            WriterChoice::Run(w) => {
                self.settings.set_remote(None);
                self.set_writer(Some(w));
            }
        }
        if let Some(e) = broken.first() {
            out.push(Out::warn(format!("not offered as a writer: {e}")));
        }
    }

    /// The annotate mode: the model labels the file's texts into review. A classifier adapter
    /// chosen as the writer labels; otherwise the base model does, with the seeds in context.
    fn start_annotation(&mut self, shared: &Shared, out: &mut Vec<Out>) {
        if let Some(refusal) = shared.refuse_start("annotate") {
            return out.push(refusal);
        }
        if self.annotate_file.is_empty() {
            return out.push(Out::warn(
                "type the unlabelled file's path in the `annotate` setting first",
            ));
        }
        let input = std::path::PathBuf::from(&self.annotate_file);
        if !input.is_file() {
            return out.push(Out::error(format!("{}: no such file", input.display())));
        }
        let adapter = self.writer.as_ref().filter(|w| !w.teacher).cloned();
        let request = crate::engine::AnnotateRequest {
            input: input.clone(),
            read: Default::default(),
            adapter: adapter.as_ref().map(|w| w.dir.clone()),
            limit: None,
            min_confidence: self.min_confidence,
            filters: self.filters.clone(),
        };
        self.streams.clear();
        out.push(Out::Start(
            JobKind::Annotate,
            Command::Annotate(Box::new(request)),
        ));
        out.push(Out::info(format!(
            "labelling {} with {} (kept at p ≥ {:.2})",
            input.display(),
            match &adapter {
                Some(w) => format!("the adapter of {}", w.run),
                None => "the base model and the seeds".to_string(),
            },
            self.min_confidence
        )));
    }

    fn start_generation(&mut self, shared: &Shared, out: &mut Vec<Out>) {
        if let Some(refusal) = shared.refuse_start("generate") {
            return out.push(refusal);
        }
        if let Err(e) = self.settings.validate() {
            return out.push(Out::error(e));
        }
        let settings = self.settings.clone();
        if let (Some(_), ServerState::Unreachable(why)) =
            (&settings.remote, self.server_state.get())
        {
            // The job checks again (it may be up by now) and fails with the reason if not.
            out.push(Out::warn(format!(
                "the server did not answer its check: {why}"
            )));
        }
        self.streams.clear();
        let writer = self.writer.clone();
        out.push(Out::Start(
            JobKind::Generate,
            Command::Generate {
                settings: settings.clone(),
                filters: self.filters.clone(),
                adapter: writer.as_ref().map(|w| w.dir.clone()),
            },
        ));
        if !matches!(shared.model, ModelStatus::Ready { .. }) {
            return out.push(Out::info("generation will start once the model is loaded"));
        }
        out.push(Out::info(format!(
            "generating {} per class with {} (temperature {:.2}{}, seed {})",
            settings.per_class,
            match (&settings.remote, &writer) {
                (Some(r), _) => format!(
                    "the server {}",
                    r.endpoint.name.as_deref().unwrap_or(r.endpoint.base())
                ),
                (None, None) => "the base model".to_string(),
                (None, Some(w)) if w.teacher => format!("the teacher {}", w.run),
                (None, Some(w)) => format!("the adapter of {}", w.run),
            },
            settings.sampling.temperature,
            match settings.sampling.guidance_scale {
                1.0 => String::new(),
                g => format!(
                    ", guidance {g:.1} against {}",
                    settings.guide_against.name()
                ),
            },
            settings.sampling.seed
        )));
    }
}

/// What the writer row offers.
enum WriterChoice {
    Base,
    Server(crate::llm::remote::RemoteSettings),
    Run(Writer),
}

impl GenerateState {
    /// A server in the writer row: its name, whether it answers and with which model, and the
    /// running generation's tokens/s.
    pub(super) fn server_row(
        &self,
        r: &crate::llm::remote::RemoteSettings,
        rate: Option<f64>,
    ) -> String {
        let name = r.endpoint.name.as_deref().unwrap_or(r.endpoint.base());
        // The form's column is narrow: the name first, then what matters most.
        match (self.server_state.get(), rate) {
            (ServerState::Checking, _) => format!("{name} checking…"),
            (ServerState::Ready(_), Some(rate)) => format!("{name} {rate:.0} tok/s"),
            (ServerState::Ready(model), None) => format!("{name} ✓ {model}"),
            (ServerState::Unreachable(_), _) => format!("{name} ✗ unreachable"),
        }
    }
}

/// A run folder named `<date>-<HHMMSS>-<what>` as `HH:MM:SS`, so the form's narrow column
/// tells runs apart; other names as they are.
pub(super) fn run_time(run: &str) -> String {
    match run.split('-').nth(1) {
        Some(t) if t.len() == 6 && t.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}:{}:{}", &t[0..2], &t[2..4], &t[4..6])
        }
        _ => run.to_string(),
    }
}

fn fmt_eta(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `ETA 12s`, `ETA 3m05s`.
pub fn eta_text(eta: Option<f64>) -> String {
    eta.map(|e| format!("ETA {}", fmt_eta(e)))
        .unwrap_or_else(|| "ETA –".into())
}

fn draw(frame: &mut Frame, area: Rect, theme: &Theme, g: &GenerateState, shared: &Shared) {
    let ws = shared.ws;
    let mut fields = g.fields();
    // A server writing: its live rate in its row.
    if let (Some(r), Some(job)) = (
        &g.settings.remote,
        shared.job.filter(|j| j.kind == JobKind::Generate),
    ) {
        fields[Setting::Writer.row()].value = g.server_row(r, Some(job.tokens_per_second));
    }
    let form_w = if area.width >= 100 { 36 } else { 30 };
    let [top, progress_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(1)]).areas(area);
    // The form scrolls rather than push the workspace summary off a small screen.
    let form_h = (fields.len() as u16 + 3)
        .min(top.height.saturating_sub(4))
        .max(5);
    let [left, right] =
        Layout::horizontal([Constraint::Length(form_w), Constraint::Min(20)]).areas(top);
    let [form_area, below_form] =
        Layout::vertical([Constraint::Length(form_h), Constraint::Min(0)]).areas(left);

    // Settings.
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(true))
        .title(Line::styled(" Settings ", theme.title()));
    let inner = block.inner(form_area);
    frame.render_widget(block, form_area);
    let mut fs = g.form;
    frame.render_stateful_widget(
        Form {
            fields: &fields,
            style: theme.text(),
            selected_style: theme.selected(),
            dim_style: theme.dim(),
            focused: g.editor.is_none(),
        },
        inner,
        &mut fs,
    );
    if below_form.height >= 3 {
        draw_summary(frame, below_form, theme, g, shared);
    }

    // Live sequences and finished items, or the template.
    let labels = label_names(ws);
    if g.show_template {
        let text = match &g.template_text {
            Ok(t) => t.clone(),
            Err(e) => format!("cannot read the template: {e}"),
        };
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .style(theme.text())
                .block(
                    Block::bordered()
                        .border_type(BorderType::Rounded)
                        .border_style(theme.border(false))
                        .title(Line::styled(
                            format!(" Template · {} (t hides) ", g.template_source),
                            theme.title(),
                        )),
                ),
            right,
        );
    } else {
        let n_streams = g.streams.len().max(1) as u16;
        let live_h = (n_streams + 2).min(right.height / 2).max(3);
        let [live, done] =
            Layout::vertical([Constraint::Length(live_h), Constraint::Min(3)]).areas(right);
        draw_live(frame, live, g, shared, &labels, theme);
        draw_finished(frame, done, g, shared, &labels, theme);
    }
    draw_progress(frame, progress_area, shared, theme);
}

fn draw_live(
    frame: &mut Frame,
    area: Rect,
    g: &GenerateState,
    shared: &Shared,
    labels: &[String],
    theme: &Theme,
) {
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(false))
        .title(Line::styled(
            format!(" Writing now ({}) ", g.streams.len()),
            theme.title(),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let w = inner.width as usize;
    let lines: Vec<Line> = if g.streams.is_empty() {
        let idle = match (shared.job, shared.queued) {
            (Some(j), _) if j.kind == JobKind::Generate && shared.checking_labels() => {
                "checking labels…"
            }
            (Some(j), _) if j.kind == JobKind::Generate => "starting…",
            (_, Some(JobKind::Generate)) => "waiting for the model…",
            _ => "idle — g starts generating",
        };
        vec![Line::styled(idle, theme.dim())]
    } else {
        g.streams
            .iter()
            .rev()
            .take(inner.height as usize)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|(index, s)| {
                let li = label_index(labels, &s.label);
                let prefix = format!("#{index:<3} ");
                let label = truncate(&s.label, 10);
                let room = w.saturating_sub(prefix.len() + label.chars().count() + 2);
                Line::from(vec![
                    Span::styled(prefix, theme.dim()),
                    Span::styled(label, theme.label(li)),
                    Span::raw(" "),
                    Span::styled(tail(&one_line(&s.text), room), theme.text()),
                    Span::styled("▌", theme.accent()),
                ])
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_finished(
    frame: &mut Frame,
    area: Rect,
    g: &GenerateState,
    shared: &Shared,
    labels: &[String],
    theme: &Theme,
) {
    let ws = shared.ws;
    let finished = &g.finished;
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(false))
        .title(Line::styled(
            format!(" Finished this session ({}) ", finished.len()),
            theme.title(),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let w = inner.width as usize;
    if finished.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![
                Line::styled(
                    "Items appear here as they are written, with each filter's verdict.",
                    theme.dim(),
                ),
                Line::styled(
                    format!(
                        "The workspace holds {} items so far.",
                        ws.state().items().len()
                    ),
                    theme.dim(),
                ),
            ])
            .wrap(Wrap { trim: false }),
            inner,
        );
        return;
    }
    let lines: Vec<Line> = finished
        .iter()
        .rev()
        .take(inner.height as usize)
        .filter_map(|id| ws.state().get(id.as_str()))
        .map(|it| {
            let li = label_index(labels, it.label());
            let (verdict, style) = if shared.is_held(it.id()) && it.status() == Status::Pending {
                ("… label check".to_string(), theme.info())
            } else {
                match it.status() {
                    Status::AutoRejected => {
                        let v = it.failed_verdicts().next();
                        (
                            format!("✗ {}", v.map(|v| stage_label(&v.stage)).unwrap_or("filter")),
                            theme.error(),
                        )
                    }
                    Status::Accepted => ("✓ accepted".into(), theme.ok()),
                    Status::Rejected => ("✗ by you".into(), theme.error()),
                    Status::Pending => ("✓ kept".into(), theme.ok()),
                }
            };
            let id = format!("{} ", it.id());
            let label = format!("{:<9}", truncate(it.label(), 9));
            let verdict = format!("{:<13}", truncate(&verdict, 13));
            let room = w.saturating_sub(id.len() + 10 + 14);
            Line::from(vec![
                Span::styled(id, theme.dim()),
                Span::styled(label, theme.label(li)),
                Span::raw(" "),
                Span::styled(verdict, style),
                Span::raw(" "),
                Span::styled(truncate(&one_line(it.text()), room), theme.text()),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Totals under the form: what the workspace holds, and the last log line.
fn draw_summary(frame: &mut Frame, area: Rect, theme: &Theme, g: &GenerateState, shared: &Shared) {
    let t = shared.ws.state().totals();
    let ready = shared.ready_queue().len();
    let mut lines = vec![
        Line::styled(
            format!(" {} items in the workspace", t.total()),
            theme.dim(),
        ),
        Line::styled(
            match t.pending.saturating_sub(ready) {
                0 => format!(" {ready} to review · {} accepted", t.accepted),
                checking => format!(" {ready} to review · {checking} checking"),
            },
            theme.dim(),
        ),
        Line::styled(
            format!(" {} rejected · {} by filters", t.rejected, t.auto_rejected),
            theme.dim(),
        ),
    ];
    let attributes = &shared.ws.task().attributes;
    if !attributes.is_empty() {
        let said: Vec<String> = attributes
            .iter()
            .map(|a| format!("{} ({})", a.name, a.values.len()))
            .collect();
        lines.push(Line::styled(
            format!(" attributes: {}", said.join(", ")),
            theme.dim(),
        ));
    }
    if let Some(judge) = &g.judge_note {
        lines.push(Line::styled(format!(" {judge}"), theme.dim()));
    }
    // Two lines: a job's last words (the kept items' lengths) often follow one worth keeping in
    // view (a class the attempt cap cut short).
    let recent = shared.log.len().saturating_sub(2);
    for line in &shared.log[recent..] {
        lines.push(Line::styled(format!(" {line}"), theme.dim()));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn draw_progress(frame: &mut Frame, area: Rect, shared: &Shared, theme: &Theme) {
    let (ratio, label) = match shared.job {
        Some(j) if matches!(j.kind, JobKind::Generate | JobKind::Annotate) => {
            let ratio = if j.total > 0 {
                j.done as f64 / j.total as f64
            } else {
                0.0
            };
            let state = if j.stopping {
                " · stopping"
            } else if j.paused {
                " · paused"
            } else {
                ""
            };
            (
                ratio,
                format!(
                    "{}/{} · {:.1} {} · {}{state}",
                    j.done,
                    j.total,
                    j.tokens_per_second,
                    j.kind.rate_unit(),
                    eta_text(j.eta_seconds)
                ),
            )
        }
        Some(j) => (0.0, format!("{} job running", j.kind.name())),
        None if shared.queued == Some(JobKind::Generate) => {
            (0.0, "waiting for the model to load…".to_string())
        }
        None => (0.0, "idle · g starts · s stops · p pauses".to_string()),
    };
    let running = shared
        .job
        .is_some_and(|j| matches!(j.kind, JobKind::Generate | JobKind::Annotate));
    let bar_w = if running {
        (area.width as usize / 3).clamp(10, 40)
    } else {
        0
    };
    let filled = ((ratio.clamp(0.0, 1.0) * bar_w as f64).round() as usize).min(bar_w);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("█".repeat(filled), theme.accent()),
            Span::styled("░".repeat(bar_w - filled), theme.dim()),
            Span::raw(if running { " " } else { "" }),
            Span::styled(
                truncate(&label, (area.width as usize).saturating_sub(bar_w + 1)),
                theme.bold(),
            ),
        ])),
        area,
    );
}
