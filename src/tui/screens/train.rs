//! Train: LoRA settings (the trainer's own defaults), what to train on (seeds + accepted items,
//! or the seeds alone as the baseline), start / pause / stop, the train and validation loss
//! drawn live with step, step time and ETA, and the runs already on disk.
//!
//! Starting sends [`Command::Train`]; the trainer's events come back as
//! `engine::Event::Train { event }` and are drawn by [`super::runs::Curves::push`] into
//! [`TrainState::live`] — the same reader that plots a finished run's `metrics.jsonl`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, BorderType, Chart, Dataset, GraphType, Paragraph, Row, Table, TableState, Wrap,
};

use super::generate::eta_text;
use super::runs::{Curves, RunInfo, RunSelection};
use crate::data::state::Status;
use crate::engine::distil_job::DistilRequest;
use crate::engine::{Command, Event, JobKind, TrainRequest};
use crate::student::distil::DistilSettings;
use crate::train::checkpoint::{Status as CheckpointStatus, reason_text};
use crate::train::trainer::{MAX_MEMBERS, TrainConfig};
use crate::tui::action::Action;
use crate::tui::app::{MessageKind, ModelStatus};
use crate::tui::component::{Component, Out, Shared};
use crate::tui::keymap::Context;
use crate::tui::theme::Theme;
use crate::tui::widgets::field_editor::{Edited, FieldEditor};
use crate::tui::widgets::form::{Field, Form, FormState};
use crate::tui::widgets::text::truncate;

/// The settings a training run will take: the trainer's configuration (its defaults until
/// changed here) and the data choice.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    pub config: TrainConfig,
    /// Seeds + accepted items (the method) or the seeds alone (the baseline).
    pub with_accepted: bool,
    /// With the accepted items: then the seeds alone, on from that run's adapter (staged).
    pub then_seeds: bool,
}

impl Default for TrainSettings {
    fn default() -> Self {
        // Staged: of the ways to train on generated items measured on validation rows, the
        // only one ahead of the seeds alone on both datasets (docs/results.md).
        TrainSettings {
            config: TrainConfig::default(),
            with_accepted: true,
            then_seeds: true,
        }
    }
}

pub const FIELDS: [&str; 10] = [
    "train on",
    "LoRA rank",
    "alpha",
    "epochs",
    "learning rate",
    "batch size",
    "validation",
    "patience",
    "soup of",
    "activations",
];

#[derive(Debug, Clone, Default)]
pub struct TrainState {
    pub settings: TrainSettings,
    pub form: FormState,
    /// The metrics of the training job running now (from `Event::Train`).
    pub live: Curves,
    /// The run on disk shown when nothing is training.
    pub run: RunSelection,
    /// The run folder a resumed training job continues (selected when it ends).
    pub resuming: Option<std::path::PathBuf>,
    /// The setting being typed.
    dialog: Option<FieldEditor>,
}

/// The run folders a training run left (an ICL or zero-shot evaluation's folder has nothing
/// to plot), newest first.
pub fn training_runs(runs: &[RunInfo]) -> Vec<&RunInfo> {
    runs.iter()
        .filter(|r| !r.curves.is_empty() || r.trained_on.is_some() || r.metrics_error.is_some())
        .collect()
}

/// What the chart area says before any run exists.
pub const NO_RUNS: &str = "No training run yet — g starts one.";

impl TrainState {
    pub fn fields(&self, accepted: usize) -> Vec<Field> {
        let s = &self.settings;
        let c = &s.config;
        let f = |i: usize, value: String, hint: &'static str| Field {
            name: FIELDS[i],
            value,
            hint,
            disabled: false,
        };
        vec![
            f(
                0,
                match (s.with_accepted, s.then_seeds) {
                    (true, false) => format!("seeds+{accepted}"),
                    (true, true) => format!("staged+{accepted}"),
                    (false, _) => "seeds only".into(),
                },
                "accepted/staged/seeds only",
            ),
            f(
                1,
                c.lora.rank.to_string(),
                "8 under 100 examples, 16 up to 1000",
            ),
            f(
                2,
                format!("{}", c.lora.alpha),
                "scale α (the update is α/r · AB)",
            ),
            f(3, c.epochs.to_string(), "passes over the training examples"),
            f(4, format!("{:.0e}", c.lr), "peak learning rate"),
            f(5, c.batch_size.to_string(), "examples per step"),
            f(
                6,
                format!("{:.0}%", c.val_fraction * 100.0),
                "real examples held out for validation",
            ),
            f(
                7,
                c.patience.to_string(),
                "epochs without a lower validation loss before stopping",
            ),
            f(
                8,
                if c.members > 1 {
                    format!("{} runs", c.members)
                } else {
                    "1 run".into()
                },
                "runs averaged into one adapter, each holding out other seeds",
            ),
            f(
                9,
                match c.recompute {
                    None => "auto".into(),
                    Some(true) => "recomputed".into(),
                    Some(false) => "kept".into(),
                },
                "recomputed: ¼ RAM, slower",
            ),
        ]
    }

    pub fn adjust(&mut self, field: usize, up: bool) {
        let s = &mut self.settings;
        let c = &mut s.config;
        let step = |v: usize, by: usize, min: usize| {
            if up {
                v.saturating_add(by)
            } else {
                v.saturating_sub(by).max(min)
            }
        };
        match field {
            0 => {
                // seeds+accepted → staged → seeds only → seeds+accepted (← the other way).
                let order = [(true, false), (true, true), (false, false)];
                let at = order
                    .iter()
                    .position(|&o| o == (s.with_accepted, s.then_seeds && s.with_accepted))
                    .unwrap_or(0);
                let next = (if up { at + 1 } else { at + order.len() - 1 }) % order.len();
                (s.with_accepted, s.then_seeds) = order[next];
            }
            1 => {
                c.lora.rank = if up {
                    c.lora.rank * 2
                } else {
                    (c.lora.rank / 2).max(1)
                }
            }
            2 => {
                c.lora.alpha = if up {
                    c.lora.alpha * 2.0
                } else {
                    (c.lora.alpha / 2.0).max(1.0)
                }
            }
            3 => c.epochs = step(c.epochs, 1, 1),
            4 => c.lr = if up { c.lr * 2.0 } else { c.lr / 2.0 },
            5 => c.batch_size = step(c.batch_size, 1, 1),
            6 => {
                let v = c.val_fraction + if up { 0.05 } else { -0.05 };
                c.val_fraction = ((v / 0.05).round() * 0.05).clamp(0.0, 0.5);
            }
            7 => c.patience = step(c.patience, 1, 0),
            8 => c.members = step(c.members, 1, 1).min(MAX_MEMBERS),
            9 => {
                // auto → recomputed → kept → auto (← the other way).
                let order = [None, Some(true), Some(false)];
                let at = order.iter().position(|&o| o == c.recompute).unwrap_or(0);
                let next = (if up { at + 1 } else { at + order.len() - 1 }) % order.len();
                c.recompute = order[next];
            }
            _ => {}
        }
    }

    pub fn set_field(&mut self, field: usize, text: &str) -> Result<(), String> {
        let t = text.trim().trim_end_matches('%');
        if t.is_empty() {
            return Ok(());
        }
        let name = FIELDS.get(field).copied().unwrap_or("setting");
        let int = |min: usize| {
            t.parse::<usize>()
                .ok()
                .filter(|v| *v >= min)
                .ok_or_else(|| format!("{name}: a whole number ≥ {min}, not `{t}`"))
        };
        let pos = || {
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("{name}: a positive number, not `{t}`"))
        };
        let s = &mut self.settings;
        let c = &mut s.config;
        match field {
            0 => {
                (s.with_accepted, s.then_seeds) = match t.to_ascii_lowercase().as_str() {
                    "seeds" | "seeds only" | "no" | "off" => (false, false),
                    "accepted" | "seeds+accepted" | "all" | "yes" | "on" => (true, false),
                    "staged" | "then seeds" => (true, true),
                    _ => {
                        return Err(format!(
                            "train on: `seeds`, `accepted` or `staged`, not `{t}`"
                        ));
                    }
                }
            }
            1 => c.lora.rank = int(1)?,
            2 => c.lora.alpha = pos()?,
            3 => c.epochs = int(1)?,
            4 => c.lr = pos()?,
            5 => c.batch_size = int(1)?,
            6 => {
                let v = pos()?;
                let f = if v >= 1.0 { v / 100.0 } else { v };
                if f > 0.9 {
                    return Err("validation: at most 90%".into());
                }
                c.val_fraction = f;
            }
            7 => c.patience = int(0)?,
            8 => {
                let n = int(1)?;
                if n > MAX_MEMBERS {
                    return Err(format!("soup of: at most {MAX_MEMBERS} runs, not {n}"));
                }
                c.members = n;
            }
            9 => {
                c.recompute = match t.to_ascii_lowercase().as_str() {
                    "auto" => None,
                    "recomputed" | "recompute" | "on" => Some(true),
                    "kept" | "keep" | "off" => Some(false),
                    _ => {
                        return Err(format!(
                            "activations: `auto`, `recomputed` or `kept`, not `{t}`"
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl TrainState {
    /// The setting being typed, if its editor is open: (its row, the editor).
    pub fn open_field(&self) -> Option<&FieldEditor> {
        self.dialog.as_ref()
    }

    fn on_screen(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        let job = shared.job.map(|j| j.kind);
        match action {
            Action::Up => self.form.up(),
            Action::Down => self.form.down(FIELDS.len()),
            Action::Decrease | Action::Increase => {
                let f = self.form.selected;
                self.adjust(f, matches!(action, Action::Increase));
            }
            Action::EditField if self.form.selected == 0 => self.adjust(0, true),
            Action::EditField => self.dialog = Some(FieldEditor::new(self.form.selected, "")),
            Action::PageUp => self.run.step(&training_runs(shared.runs), -1),
            Action::PageDown => self.run.step(&training_runs(shared.runs), 1),
            Action::Start => self.start_training(shared, out),
            Action::Stop => match job {
                Some(JobKind::Distil) => {
                    out.push(Out::Cancel);
                    out.push(Out::info("stopping: no student is saved"));
                }
                Some(JobKind::Train) => {
                    out.push(Out::Cancel);
                    out.push(Out::info("stopping: the best adapter so far is saved"));
                }
                _ => out.push(Out::info("no training is running")),
            },
            Action::Pause => match shared.job.filter(|j| j.kind == JobKind::Train) {
                Some(j) => {
                    let paused = !j.paused;
                    out.push(Out::Pause(paused));
                    out.push(Out::info(if paused {
                        "training paused after this step (p resumes)"
                    } else {
                        "training resumed"
                    }));
                }
                None => out.push(Out::info("no training is running")),
            },
            Action::Refresh => out.push(Out::RefreshRuns),
            Action::ResumeRun => self.resume_training(shared, out),
            Action::Distil => self.start_distil(shared, out),
            _ => {}
        }
    }

    /// Puts the editor back unless `action` closed it; a value refused keeps it open.
    fn on_field(&mut self, d: FieldEditor, action: Action, out: &mut Vec<Out>) {
        match d.handle(&action) {
            Edited::Open(d) => self.dialog = Some(d),
            Edited::Cancelled => {}
            Edited::Submitted(d) => {
                if let Err(e) = self.set_field(d.field, &d.editor.text()) {
                    out.push(Out::Say(MessageKind::Error, e));
                    self.dialog = Some(d);
                }
            }
        }
    }

    /// `R`: the selected run goes on from its checkpoint, when it was stopped or cut off.
    fn resume_training(&mut self, shared: &Shared, out: &mut Vec<Out>) {
        if let Some(refusal) = shared.refuse_start("resume") {
            return out.push(refusal);
        }
        let runs = training_runs(shared.runs);
        let Some(run) = runs.get(self.run.row(&runs)) else {
            return out.push(Out::info("no run on disk to resume"));
        };
        let (name, dir) = (run.name.clone(), run.dir.clone());
        let at = match &run.checkpoint {
            CheckpointStatus::Resumable(p) => (p.step, p.epoch),
            CheckpointStatus::Finished(reason) => {
                let reason = reason_text(*reason);
                let text = format!("{name} has finished ({reason}); nothing to resume");
                return out.push(Out::info(text));
            }
            CheckpointStatus::Absent => {
                let text = format!("{name} has no checkpoint to resume from; g starts a new run");
                return out.push(Out::info(text));
            }
            CheckpointStatus::Unreadable(e) => {
                let text = format!("cannot resume {name}: {e}");
                return out.push(Out::Say(MessageKind::Error, text));
            }
        };
        self.live = Curves::default();
        self.resuming = Some(dir.clone());
        out.push(Out::Start(
            JobKind::Train,
            Command::ResumeTrain { run: dir },
        ));
        out.push(Out::info(format!(
            "resuming {name} after step {} (epoch {}; p pauses, s stops)",
            at.0,
            at.1 + 1
        )));
    }

    /// `d`: the selected run (a LoRA classifier) teaches a student, in a new
    /// `runs/<time>-student` folder beside it.
    fn start_distil(&mut self, shared: &Shared, out: &mut Vec<Out>) {
        if let Some(refusal) = shared.refuse_start("distil") {
            return out.push(refusal);
        }
        let runs = training_runs(shared.runs);
        let Some(run) = runs.get(self.run.row(&runs)) else {
            return out.push(Out::info("no run on disk to distil; g trains one first"));
        };
        let (name, dir) = (run.name.clone(), run.dir.clone());
        match run.adapter {
            Some(crate::train::trainer::Objective::Classify) => {}
            Some(_) => {
                return out.push(Out::info(format!(
                    "{name} is a teacher that writes examples, not a classifier; choose a \
                     classifier run ([ ])"
                )));
            }
            None => {
                return out.push(Out::info(format!(
                    "{name} has no complete adapter to distil; choose another run ([ ])"
                )));
            }
        }
        let request = DistilRequest {
            run: dir,
            unlabelled: Vec::new(),
            settings: DistilSettings::default(),
        };
        out.push(Out::Start(
            JobKind::Distil,
            Command::Distil(Box::new(request)),
        ));
        out.push(Out::info(if matches!(shared.model, ModelStatus::Ready { .. }) {
            format!("distilling {name}: it labels the texts it trained on, then a student learns them (s stops)")
        } else {
            format!("distilling {name} will start once the model is loaded")
        }));
    }

    fn start_training(&mut self, shared: &Shared, out: &mut Vec<Out>) {
        if let Some(refusal) = shared.refuse_start("train") {
            return out.push(refusal);
        }
        let settings = self.settings.clone();
        if let Err(e) = settings.config.validate() {
            return out.push(Out::Say(MessageKind::Error, format!("cannot train: {e}")));
        }
        let seeds = shared.ws.seeds().len();
        let accepted = shared.ws.state().with_status(Status::Accepted).count();
        if seeds == 0 {
            return out.push(Out::Say(
                MessageKind::Error,
                "cannot train: the workspace has no seeds (add some on the Seeds screen)".into(),
            ));
        }
        self.live = Curves::default();
        let request = TrainRequest {
            config: settings.config.clone(),
            with_accepted: settings.with_accepted,
            then_seeds: settings.with_accepted && settings.then_seeds,
        };
        out.push(Out::Start(
            JobKind::Train,
            Command::Train(Box::new(request)),
        ));
        let on = match (settings.with_accepted, settings.then_seeds) {
            (true, false) => format!("{seeds} seeds + {accepted} accepted items"),
            (true, true) => format!("{seeds} seeds + {accepted} accepted items, then the seeds"),
            (false, _) => format!("{seeds} seeds only"),
        };
        out.push(Out::info(
            if matches!(shared.model, ModelStatus::Ready { .. }) {
                format!(
                    "training on {on}: {} epochs, lr {:.0e} (p pauses, s stops)",
                    settings.config.epochs, settings.config.lr
                )
            } else {
                format!("training on {on} will start once the model is loaded")
            },
        ));
    }
}

impl Component for TrainState {
    fn dialog(&self) -> Option<Context> {
        self.dialog.as_ref().map(|_| Context::TextInput)
    }

    fn handle(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        match self.dialog.take() {
            Some(d) => self.on_field(d, action, out),
            None => self.on_screen(action, shared, out),
        }
    }

    fn on_event(&mut self, event: &Event, shared: &Shared, out: &mut Vec<Out>) {
        match event {
            Event::JobStarted {
                kind: JobKind::Train,
                ..
            } => self.live = Curves::default(),
            Event::Train { event, .. } => {
                self.live.push(event);
                // The status bar follows the steps (the trainer may send no Progress events).
                if shared.job.is_some_and(|j| j.kind == JobKind::Train) {
                    out.push(Out::Progress {
                        done: self.live.last_step,
                        total: self.live.total_steps,
                        eta_seconds: self.live.eta_seconds(),
                    });
                }
            }
            // The run it wrote is on disk (the App has read the runs again), so the chart moves
            // from the live curves to that run (newest first, so the first in the list).
            Event::JobFinished {
                kind: JobKind::Train,
                ..
            }
            | Event::JobCancelled {
                kind: JobKind::Train,
                ..
            }
            | Event::JobFailed {
                kind: JobKind::Train,
                ..
            } => {
                let runs = training_runs(shared.runs);
                match self.resuming.take() {
                    Some(dir) => self.run.select_dir(&runs, &dir),
                    None => self.run.select(&runs, 0),
                }
                self.live = Curves::default();
            }
            _ => {}
        }
    }

    fn paste(&mut self, text: &str) -> bool {
        self.dialog.as_mut().map(|d| d.paste(text)).is_some()
    }

    fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme, shared: &Shared) {
        draw(frame, area, theme, self, shared)
    }

    fn draw_dialog(&self, frame: &mut Frame, theme: &Theme, _shared: &Shared) {
        if let Some(d) = &self.dialog {
            d.draw(frame, theme, &FIELDS);
        }
    }
}

fn draw(frame: &mut Frame, area: Rect, theme: &Theme, state: &TrainState, shared: &Shared) {
    let fields = state.fields(shared.ws.state().with_status(Status::Accepted).count());
    let form_w = if area.width >= 100 { 34 } else { 28 };
    let runs_h = if area.height >= 20 {
        (training_runs(shared.runs).len() as u16 + 3).clamp(4, 8)
    } else {
        0
    };
    let [top, runs_area] =
        Layout::vertical([Constraint::Min(8), Constraint::Length(runs_h)]).areas(area);
    let [left, right] =
        Layout::horizontal([Constraint::Length(form_w), Constraint::Min(20)]).areas(top);

    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(true))
        .title(Line::styled(" LoRA settings ", theme.title()));
    let inner = block.inner(left);
    frame.render_widget(block, left);
    let mut fs = state.form;
    frame.render_stateful_widget(
        Form {
            fields: &fields,
            style: theme.text(),
            selected_style: theme.selected(),
            dim_style: theme.dim(),
            focused: state.dialog.is_none(),
        },
        inner,
        &mut fs,
    );

    let job = shared.job.filter(|j| j.kind == JobKind::Train);
    let training = job.is_some() || shared.queued == Some(JobKind::Train);
    let (curves, source) = if training {
        (Some(&state.live), "live".to_string())
    } else {
        let runs = training_runs(shared.runs);
        match runs.get(state.run.row(&runs)) {
            Some(r) if !r.curves.is_empty() => (Some(&r.curves), format!("run {}", r.name)),
            _ => (None, String::new()),
        }
    };
    let [chart_area, info_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(1)]).areas(right);
    match curves {
        Some(c) => {
            draw_chart(frame, chart_area, c, &source, theme);
            let mut parts = vec![];
            if let Some(s) = c.last_step {
                parts.push(match c.total_steps {
                    Some(t) => format!("step {s}/{t}"),
                    None => format!("step {s}"),
                });
            } else if training {
                parts.push("preparing the data…".into());
            }
            if let Some(t) = c.step_seconds {
                parts.push(format!("{t:.2} s/step"));
            }
            if training && c.last_step.is_some() {
                parts.push(eta_text(c.eta_seconds()));
            }
            if let Some(a) = c.val_accuracy {
                parts.push(format!("val accuracy {:.1}%", a * 100.0));
            }
            if let Some(f) = &c.finished {
                parts.push(f.replace('_', " "));
            }
            match job {
                Some(j) if j.stopping => parts.push("stopping…".into()),
                Some(j) if j.paused => parts.push("paused (p resumes)".into()),
                _ => {}
            }
            frame.render_widget(
                Paragraph::new(Line::styled(parts.join(" · "), theme.dim())),
                info_area,
            );
        }
        None => {
            let block = Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(theme.border(false))
                .title(Line::styled(" Loss (train / validation) ", theme.title()));
            let lines = vec![
                Line::raw(""),
                Line::styled(NO_RUNS, theme.bold()),
                Line::raw(""),
                Line::styled(
                    "The chart plots the train and validation loss live, with the step, step \
                     time and ETA; p pauses and s stops (the best adapter so far is kept). \
                     Each run leaves a folder in runs/ with its metrics.jsonl and adapter.",
                    theme.dim(),
                ),
                Line::raw(""),
                Line::styled(
                    format!("runs folder: {}/runs", shared.workspace_label),
                    theme.dim(),
                ),
            ];
            frame.render_widget(
                Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
                chart_area,
            );
        }
    }
    if runs_h > 0 {
        draw_runs(frame, runs_area, state, shared, theme);
    }
}

fn bounds(points: &[&[(f64, f64)]]) -> ([f64; 2], [f64; 2]) {
    let all = points.iter().flat_map(|p| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ([0.0, 1.0], [0.0, 1.0]);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    ([x0, x1], [(y0 - pad).max(0.0), y1 + pad])
}

fn draw_chart(frame: &mut Frame, area: Rect, c: &Curves, source: &str, theme: &Theme) {
    let (xb, yb) = bounds(&[&c.train, &c.val]);
    let datasets = vec![
        Dataset::default()
            .name("train")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(theme.train_line))
            .data(&c.train),
        Dataset::default()
            .name("validation")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(theme.val_line))
            .data(&c.val),
    ];
    let label = |v: f64| Span::styled(format!("{v:.2}"), theme.dim());
    let chart = Chart::new(datasets)
        .block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(theme.border(false))
                .title(Line::styled(format!(" Loss · {source} "), theme.title())),
        )
        .x_axis(
            Axis::default()
                .title(Span::styled("step", theme.dim()))
                .bounds(xb)
                .labels([
                    Span::styled(format!("{:.0}", xb[0]), theme.dim()),
                    Span::styled(format!("{:.0}", xb[1]), theme.dim()),
                ])
                .style(theme.dim()),
        )
        .y_axis(
            Axis::default()
                .bounds(yb)
                .labels([label(yb[0]), label((yb[0] + yb[1]) / 2.0), label(yb[1])])
                .style(theme.dim()),
        )
        .style(theme.text());
    frame.render_widget(chart, area);
}

fn draw_runs(frame: &mut Frame, area: Rect, state: &TrainState, shared: &Shared, theme: &Theme) {
    let runs = training_runs(shared.runs);
    let rows: Vec<Row> = runs
        .iter()
        .map(|r| {
            let c = &r.curves;
            let best_val = c
                .val
                .iter()
                .map(|p| p.1)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
            Row::new(vec![
                truncate(&r.name, 28),
                r.trained_on
                    .as_ref()
                    .map(super::runs::short)
                    .unwrap_or_else(|| "–".into()),
                c.last_step
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "–".into()),
                best_val
                    .map(|v| format!("{v:.3}"))
                    .unwrap_or_else(|| "–".into()),
                r.eval
                    .as_ref()
                    .and_then(|e| e.accuracy)
                    .map(|a| format!("{:.1}%", a * 100.0))
                    .unwrap_or_else(|| "–".into()),
                r.metrics_error
                    .clone()
                    .unwrap_or_else(|| match &r.checkpoint {
                        CheckpointStatus::Resumable(p) => {
                            format!("resumable from step {} (R)", p.step)
                        }
                        CheckpointStatus::Unreadable(_) => "checkpoint unreadable".into(),
                        _ => String::new(),
                    }),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Length(28),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Min(0),
        ],
    )
    .header(Row::new(["run", "data", "steps", "best val", "accuracy", ""]).style(theme.dim()))
    .row_highlight_style(theme.selected())
    .block(
        Block::bordered()
            .border_type(BorderType::Rounded)
            .border_style(theme.border(false))
            .title(Line::styled(
                format!(
                    " Runs on disk ({}) · [ ] choose{}{} · r reloads ",
                    runs.len(),
                    if runs.iter().any(|r| r.resumable_at().is_some()) {
                        " · R resumes"
                    } else {
                        ""
                    },
                    if runs
                        .iter()
                        .any(|r| r.adapter == Some(crate::train::trainer::Objective::Classify))
                    {
                        " · d distils"
                    } else {
                        ""
                    }
                ),
                theme.title(),
            )),
    )
    .style(theme.text());
    let mut state = TableState::default().with_selected((!empty).then_some(state.run.row(&runs)));
    frame.render_stateful_widget(table, area, &mut state);
    if empty {
        let inner = area.inner(ratatui::layout::Margin::new(2, 2));
        frame.render_widget(
            Paragraph::new(Line::styled("no run folders yet", theme.dim())),
            inner,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soup_field_takes_one_to_sixteen_runs() {
        let mut t = TrainState::default();
        let soup = FIELDS.iter().position(|f| *f == "soup of").unwrap();
        assert_eq!(t.fields(0)[soup].value, "1 run");
        t.adjust(soup, false);
        assert_eq!(t.settings.config.members, 1, "never below one run");
        t.adjust(soup, true);
        assert_eq!(t.fields(0)[soup].value, "2 runs");
        t.set_field(soup, "4").unwrap();
        assert_eq!(t.settings.config.members, 4);
        let err = t.set_field(soup, "17").unwrap_err();
        assert!(err.contains("at most 16"), "{err}");
        assert!(t.set_field(soup, "0").is_err());
        assert_eq!(
            t.settings.config.members, 4,
            "a refused value changes nothing"
        );
        t.set_field(soup, "16").unwrap();
        t.adjust(soup, true);
        assert_eq!(t.settings.config.members, 16);
    }

    #[test]
    fn the_activations_field_cycles_auto_recomputed_kept_and_reads_typed_words() {
        let mut t = TrainState::default();
        let row = FIELDS.iter().position(|f| *f == "activations").unwrap();
        assert_eq!(t.fields(0)[row].value, "auto");
        assert_eq!(t.settings.config.recompute, None);
        t.adjust(row, true);
        assert_eq!(t.settings.config.recompute, Some(true));
        assert_eq!(t.fields(0)[row].value, "recomputed");
        t.adjust(row, true);
        assert_eq!(t.fields(0)[row].value, "kept");
        t.adjust(row, true);
        assert_eq!(t.settings.config.recompute, None);
        t.adjust(row, false);
        assert_eq!(t.settings.config.recompute, Some(false));
        t.set_field(row, "on").unwrap();
        assert_eq!(t.settings.config.recompute, Some(true));
        let err = t.set_field(row, "sometimes").unwrap_err();
        assert!(err.contains("`auto`, `recomputed` or `kept`"), "{err}");
        assert_eq!(t.settings.config.recompute, Some(true));
    }
}
