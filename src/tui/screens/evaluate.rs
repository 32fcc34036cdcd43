//! Evaluate: the comparison the method calls for — in-context learning with the seeds, LoRA on
//! the seeds alone, LoRA on the seeds + accepted items (and zero-shot when asked) — on a
//! labelled test file the user names, side by side, with the selected result's per-class
//! precision / recall and confusion matrix.
//!
//! `g` sends [`Command::Evaluate`] for the test set typed here (remembered in the workspace,
//! [`TestSetChoice`]); every result lands as `runs/<id>/eval.json`, which is what this screen
//! draws (read by [`crate::eval::run_folder`]), so results from `seedforge eval` show up too.
//!
//! `l` labels a file of unlabelled texts with the selected classifier ([`Command::Predict`], the
//! job `seedforge predict` shares its reading with) into `predictions/<time>-<name>.jsonl`.

use std::path::{Path, PathBuf};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::generate::eta_text;
use super::runs::{EvalInfo, RunInfo, RunSelection};
use crate::data::import::{ImportOptions, LabelMap};
use crate::data::test_set::TestSetChoice;
use crate::engine::eval_job::Target;
use crate::engine::{Command, EvalRequest, Event, JobKind, PredictRequest};
use crate::eval::paired::{Paired, Scored, against_twins, cell};
use crate::train::run::TrainedOn;
use crate::tui::action::Action;
use crate::tui::app::{MessageKind, ModelStatus, label_index};
use crate::tui::component::{Component, Out, Shared};
use crate::tui::keymap::Context;
use crate::tui::read_model::ReadModel;
use crate::tui::theme::Theme;
use crate::tui::widgets::field_editor::{Edited, FieldEditor};
use crate::tui::widgets::text::truncate;

/// The settings typed in a prompt, by [`Action::SetField`] index.
pub const FIELDS: [&str; 4] = ["test file", "label map", "row limit", "file to label"];
/// The field whose saving starts labelling.
pub const LABEL_FILE: usize = 3;

#[derive(Debug, Clone, Default)]
pub struct EvaluateState {
    /// Selected among the comparison's rows.
    pub selected: RunSelection,
    /// The test set to evaluate on.
    pub choice: TestSetChoice,
    /// The method being evaluated now: (name, index, count).
    pub stage: Option<(String, usize, usize)>,
    /// The running or last evaluation's warnings (bad rows, with file and line).
    pub notes: Vec<String>,
    /// Why the last evaluation or labelling failed.
    pub error: Option<String>,
    /// The last file typed to be labelled.
    pub label_file: String,
    /// The labelling job running or queued: the classifier's name and the result file.
    pub labelling: Option<(String, PathBuf)>,
    dialog: Option<FieldEditor>,
}

impl EvaluateState {
    pub fn new(choice: TestSetChoice) -> Self {
        EvaluateState {
            choice,
            ..Default::default()
        }
    }

    /// The current value of a typed setting, to edit it in place.
    pub fn field_text(&self, field: usize) -> String {
        let c = &self.choice;
        match field {
            0 => c.path.clone(),
            1 => c.label_map.clone(),
            LABEL_FILE => self.label_file.clone(),
            _ => c.limit.map(|n| n.to_string()).unwrap_or_default(),
        }
    }

    /// A typed value; the error says what is allowed.
    pub fn set_field(&mut self, field: usize, text: &str) -> Result<(), String> {
        let t = text.trim();
        let c = &mut self.choice;
        match field {
            0 => c.path = t.to_string(),
            LABEL_FILE => self.label_file = t.to_string(),
            1 => {
                if !t.is_empty() {
                    t.parse::<LabelMap>()
                        .map_err(|e| format!("label map: {e} (e.g. 0=negative,1=positive)"))?;
                }
                c.label_map = t.to_string();
            }
            _ => {
                c.limit = match t {
                    "" | "0" | "all" => None,
                    n => Some(n.parse::<usize>().map_err(|_| {
                        format!("row limit: a whole number (empty or 0: all rows), not `{n}`")
                    })?),
                }
            }
        }
        Ok(())
    }
}

/// Where a comparison row goes: ICL first, zero-shot, then LoRA on the seeds, then LoRA on
/// seeds + accepted; within one kind the newest first.
fn rank(run: &RunInfo) -> u8 {
    let name = run.model_name();
    match name.as_str() {
        "icl" => 0,
        "zero-shot" => 1,
        "lora seeds" => 2,
        n if n.starts_with("lora") => 3,
        _ => 4,
    }
}

/// The runs with results, in the comparison's order; a distilled student right under its
/// teacher (newest first), or last when its teacher has no result here.
pub fn comparison(runs: &[RunInfo]) -> Vec<&RunInfo> {
    let mut rows: Vec<&RunInfo> = runs.iter().filter(|r| r.eval.is_some()).collect();
    // `runs` is newest first; a stable sort keeps that within a kind.
    rows.sort_by_key(|r| rank(r));
    let (students, mut rows): (Vec<&RunInfo>, Vec<&RunInfo>) =
        rows.into_iter().partition(|r| r.teacher.is_some());
    for s in students {
        match rows.iter().position(|r| is_teacher_of(r, s)) {
            Some(t) => {
                let mut at = t + 1;
                while rows.get(at).is_some_and(|r| r.teacher == s.teacher) {
                    at += 1;
                }
                rows.insert(at, s);
            }
            None => rows.push(s),
        }
    }
    rows
}

/// Whether `teacher` is the run `student` was distilled from (a student is saved beside its
/// teacher, so the folder's name says it).
pub fn is_teacher_of(teacher: &RunInfo, student: &RunInfo) -> bool {
    teacher.teacher.is_none()
        && student
            .teacher
            .as_ref()
            .and_then(|t| t.file_name())
            .is_some_and(|n| *n == *teacher.name)
}

/// `8.0`, `340`, `66958` texts a second.
fn rate_text(r: f64) -> String {
    if r < 100.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

/// What the results pane says above a student's table: its accuracy and speed beside its
/// teacher's on the same rows; the bool is true when it says the teacher was not scored there.
pub fn beside_teacher(runs: &[&RunInfo], student: &RunInfo) -> Option<(String, bool)> {
    let t_path = student.teacher.as_ref()?;
    let t_name = t_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| t_path.display().to_string());
    let s = student.eval.as_ref()?;
    let same_rows = |t: &&&RunInfo| {
        t.eval
            .as_ref()
            .is_some_and(|e| e.on == s.on && e.n == s.n && e.accuracy.is_some())
    };
    let Some(t) = runs
        .iter()
        .find(|r| is_teacher_of(r, student))
        .filter(same_rows)
    else {
        return Some((
            format!("student of {t_name}: its teacher has no result on these rows (g scores it)"),
            true,
        ));
    };
    let te = t.eval.as_ref()?;
    let (sa, ta) = (s.accuracy?, te.accuracy?);
    let mut text = format!(
        "student of {t_name}: {:.1}% vs {:.1}% ({:+.1} points)",
        sa * 100.0,
        ta * 100.0,
        (sa - ta) * 100.0
    );
    if let (Some(sr), Some(tr)) = (s.items_per_s, te.items_per_s) {
        text.push_str(&format!(
            " · {} vs {} texts/s (×{:.0})",
            rate_text(sr),
            rate_text(tr),
            sr / tr.max(1e-12)
        ));
    }
    Some((text, false))
}

/// A path as typed: `~/` is the home folder; a relative path is from the current folder.
fn resolve(typed: &str) -> PathBuf {
    let p = match typed.strip_prefix("~/") {
        Some(rest) => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(rest),
            None => PathBuf::from(typed),
        },
        None => PathBuf::from(typed),
    };
    if p.is_relative() {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    } else {
        p
    }
}

impl EvaluateState {
    /// The setting being typed, if its dialog is open.
    pub fn open_field(&self) -> Option<&FieldEditor> {
        self.dialog.as_ref()
    }

    fn on_screen(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        let rows = comparison(shared.runs);
        match action {
            Action::Up => self.selected.step(&rows, -1),
            Action::Down => self.selected.step(&rows, 1),
            Action::SetField(field) => self.edit_field(field),
            Action::ToggleCalibrate => {
                let c = &mut self.choice;
                c.calibrate = !c.calibrate;
                let on = if c.calibrate { "on" } else { "off" };
                out.push(Out::info(format!("calibration {on} for ICL and zero-shot")));
            }
            Action::ToggleZeroShot => {
                let c = &mut self.choice;
                c.zero_shot = !c.zero_shot;
                let on = if c.zero_shot {
                    "added to"
                } else {
                    "left out of"
                };
                out.push(Out::info(format!("zero-shot {on} the comparison")));
            }
            Action::Start => self.start_evaluation(shared, out),
            Action::Stop => match shared.job.map(|j| j.kind) {
                Some(JobKind::Predict) => {
                    out.push(Out::Cancel);
                    out.push(Out::info("stopping: the partial result is not kept"));
                }
                Some(JobKind::Evaluate) => {
                    out.push(Out::Cancel);
                    out.push(Out::info("stopping: results already saved are kept"));
                }
                _ => out.push(Out::info("no evaluation is running")),
            },
            Action::Refresh => out.push(Out::RefreshRuns),
            _ => {}
        }
    }

    fn edit_field(&mut self, field: usize) {
        self.dialog = Some(FieldEditor::new(field, &self.field_text(field)));
    }

    /// Puts the dialog back unless `action` closed it; a value refused keeps it open.
    fn on_field(&mut self, d: FieldEditor, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        match d.handle(&action) {
            Edited::Open(d) => self.dialog = Some(d),
            Edited::Cancelled => {}
            Edited::Submitted(d) => match self.set_field(d.field, &d.editor.text()) {
                Ok(()) if d.field == LABEL_FILE => self.start_labelling(shared, out),
                Ok(()) => {}
                Err(e) => {
                    out.push(Out::Say(MessageKind::Error, e));
                    self.dialog = Some(d);
                }
            },
        }
    }

    fn start_evaluation(&mut self, shared: &Shared, out: &mut Vec<Out>) {
        if let Some(refusal) = shared.refuse_start("evaluate") {
            return out.push(refusal);
        }
        let choice = self.choice.clone();
        if choice.path.trim().is_empty() {
            out.push(Out::info(
                "name the labelled test file first (enter saves it, g then starts)",
            ));
            return self.edit_field(0);
        }
        let label_map = if choice.label_map.trim().is_empty() {
            None
        } else {
            match choice.label_map.parse::<LabelMap>() {
                Ok(m) => Some(m),
                Err(e) => {
                    let error = format!("label map: {e} (e.g. 0=negative,1=positive)");
                    return self.fail(error, out);
                }
            }
        };
        let test = resolve(choice.path.trim());
        if !test.is_file() {
            let error = format!("no file at {} (f names the test file)", test.display());
            return self.fail(error, out);
        }
        // Remembered with the full path, so it still holds when started from elsewhere.
        let remembered = TestSetChoice {
            path: test.display().to_string(),
            ..choice.clone()
        };
        out.push(Out::SaveTestSet(remembered.clone()));
        self.choice = remembered;
        self.error = None;
        self.notes.clear();
        self.stage = None;
        let request = EvalRequest {
            test: test.clone(),
            read: ImportOptions {
                label_map,
                ..ImportOptions::default()
            },
            limit: choice.limit,
            zero_shot: choice.zero_shot,
            icl: true,
            calibrate: choice.calibrate,
            lora: None,
        };
        out.push(Out::Start(
            JobKind::Evaluate,
            Command::Evaluate(Box::new(request)),
        ));
        out.push(Out::info(
            if matches!(shared.model, ModelStatus::Ready { .. }) {
                let name = test.file_name().map(|n| n.to_string_lossy().into_owned());
                format!(
                    "evaluating ICL, every LoRA run and student on {} (s stops)",
                    name.unwrap_or_default()
                )
            } else {
                "the evaluation will start once the model is loaded".into()
            },
        ));
    }

    /// The classifier `l` labels with: the selected comparison row's (a LoRA run, zero-shot or
    /// ICL), ICL when there is none yet.
    pub fn labelling_target(&self, runs: &[RunInfo]) -> Target {
        let rows = comparison(runs);
        let Some(run) = rows.get(self.selected.row(&rows)) else {
            return Target::Icl;
        };
        if run.adapter == Some(crate::train::trainer::Objective::Classify) {
            return Target::Lora(run.dir.clone());
        }
        if run.teacher.is_some() {
            // Not labelled here (the workbench labels with language-model classifiers): the
            // caller says how.
            return Target::Lora(run.dir.clone());
        }
        match run.model_name().as_str() {
            "zero-shot" => Target::ZeroShot,
            _ => Target::Icl,
        }
    }

    fn start_labelling(&mut self, shared: &Shared, out: &mut Vec<Out>) {
        if let Some(refusal) = shared.refuse_start("label") {
            return out.push(refusal);
        }
        let typed = self.label_file.trim().to_string();
        if typed.is_empty() {
            return out.push(Out::info(
                "l then the path of a file of texts (one a line, TSV, CSV or JSONL)",
            ));
        }
        let input = resolve(&typed);
        if !input.is_file() {
            let error = format!("no file at {} (l names the file to label)", input.display());
            return self.fail(error, out);
        }
        let target = self.labelling_target(shared.runs);
        if let Target::Lora(d) = &target
            && crate::student::store::is_student(d)
        {
            return out.push(Out::info(format!(
                "a student labels from the command line: seedforge predict --run {} --input {}",
                d.display(),
                input.display()
            )));
        }
        let result = result_path(shared.ws.dir(), &input);
        let name = target.name();
        self.error = None;
        self.notes.clear();
        self.labelling = Some((name.clone(), result.clone()));
        let request = PredictRequest {
            input: input.clone(),
            out: result.clone(),
            classifier: target,
            calibrate: self.choice.calibrate,
        };
        out.push(Out::Start(
            JobKind::Predict,
            Command::Predict(Box::new(request)),
        ));
        out.push(Out::info(format!(
            "labelling {} with {name} into {} (s stops)",
            input.display(),
            result.display()
        )));
    }

    fn fail(&mut self, error: String, out: &mut Vec<Out>) {
        out.push(Out::Say(
            MessageKind::Error,
            format!("cannot evaluate: {error}"),
        ));
        self.error = Some(error);
    }
}

impl Component for EvaluateState {
    fn dialog(&self) -> Option<Context> {
        self.dialog.as_ref().map(|_| Context::TextInput)
    }

    fn handle(&mut self, action: Action, shared: &Shared, out: &mut Vec<Out>) {
        match self.dialog.take() {
            Some(d) => self.on_field(d, action, shared, out),
            None => self.on_screen(action, shared, out),
        }
    }

    fn on_event(&mut self, event: &Event, shared: &Shared, _out: &mut Vec<Out>) {
        let scoring = |k: &JobKind| matches!(k, JobKind::Evaluate | JobKind::Predict);
        match event {
            Event::JobStarted {
                kind: JobKind::Evaluate,
                ..
            } => self.stage = None,
            Event::EvalStarted {
                name, index, count, ..
            } => self.stage = Some((name.clone(), *index, *count)),
            // The running evaluation's warnings (bad rows, with file and line).
            Event::Log(line) if shared.job.is_some_and(|j| scoring(&j.kind)) => {
                self.notes.push(line.clone())
            }
            Event::JobFailed { kind, error, .. } if scoring(kind) => {
                self.error = Some(error.clone());
                self.stage = None;
            }
            Event::JobFinished { kind, .. } | Event::JobCancelled { kind, .. }
                if *kind == JobKind::Evaluate =>
            {
                self.stage = None
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

fn draw(frame: &mut Frame, area: Rect, theme: &Theme, state: &EvaluateState, shared: &Shared) {
    let ws = shared.ws;
    // An error gets two more lines: it names the file and says what to change.
    let set_h = if state.error.is_some() && shared.job.is_none() {
        7
    } else {
        5
    };
    let [set_area, bottom] =
        Layout::vertical([Constraint::Length(set_h), Constraint::Min(6)]).areas(area);
    draw_test_set(frame, set_area, state, shared, theme);
    let runs = comparison(shared.runs);
    let list_w = if area.width >= 100 { 52 } else { 38 };
    let [list_area, results_area] =
        Layout::horizontal([Constraint::Length(list_w), Constraint::Min(20)]).areas(bottom);
    draw_comparison(frame, list_area, state, &runs, theme);
    let sel = state.selected.row(&runs);
    let against = twins(&runs)
        .into_iter()
        .nth(sel)
        .flatten()
        .and_then(|(i, p)| Some((runs.get(i)?.name.clone(), p)));
    match runs.get(sel).and_then(|r| r.eval.as_ref().map(|e| (r, e))) {
        Some((run, eval)) => {
            let beside = beside_teacher(&runs, run);
            draw_results(
                frame,
                results_area,
                run,
                eval,
                against.as_ref(),
                beside.as_ref(),
                ws,
                theme,
            )
        }
        None => {
            let lines = vec![
                Line::styled("No results yet.", theme.bold()),
                Line::raw(""),
                Line::styled(
                    format!(
                        "f names a labelled test file (TSV, CSV, JSONL, TREC), m maps its labels \
                         to the task's, g evaluates ICL with the seeds, every LoRA run and every \
                         distilled student in {}/runs; each result is saved as eval.json and \
                         listed here.",
                        shared.workspace_label
                    ),
                    theme.dim(),
                ),
            ];
            frame.render_widget(
                Paragraph::new(lines).wrap(Wrap { trim: true }).block(
                    Block::bordered()
                        .border_type(BorderType::Rounded)
                        .border_style(theme.border(false))
                        .title(Line::styled(" Results ", theme.title())),
                ),
                results_area,
            );
        }
    }
}

/// The test set (file, label map, limit, options) and the job's state or last error.
fn draw_test_set(
    frame: &mut Frame,
    area: Rect,
    state: &EvaluateState,
    shared: &Shared,
    theme: &Theme,
) {
    let c = &state.choice;
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(true))
        .title(Line::styled(" Test set ", theme.title()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let w = inner.width as usize;
    let key = |k: &str| Span::styled(format!(" ({k})"), theme.accent());
    let file = if c.path.is_empty() {
        Span::styled("none yet", theme.dim())
    } else {
        Span::styled(truncate(&c.path, w.saturating_sub(16)), theme.text())
    };
    let on_off = |b: bool| if b { "on" } else { "off" };
    // Short names where the full ones would not fit on one line.
    let [labels, rows, cal, zero] = if w >= 90 {
        ["labels ", " · rows ", " · calibrate ", " · zero-shot "]
    } else {
        ["map ", " · rows ", " · calib ", " · 0-shot "]
    };
    let lines = vec![
        Line::from(vec![Span::styled("file ", theme.dim()), file, key("f")]),
        Line::from(vec![
            Span::styled(labels, theme.dim()),
            Span::styled(
                if c.label_map.is_empty() {
                    "as in the file".to_string()
                } else {
                    c.label_map.clone()
                },
                theme.text(),
            ),
            key("m"),
            Span::styled(rows, theme.dim()),
            Span::styled(
                c.limit.map_or("all".to_string(), |n| n.to_string()),
                theme.text(),
            ),
            key("n"),
            Span::styled(cal, theme.dim()),
            Span::styled(on_off(c.calibrate), theme.text()),
            key("c"),
            Span::styled(zero, theme.dim()),
            Span::styled(on_off(c.zero_shot), theme.text()),
            key("z"),
        ]),
    ];
    let [fixed, status] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(inner);
    frame.render_widget(Paragraph::new(lines), fixed);
    frame.render_widget(
        Paragraph::new(status_line(
            state,
            shared,
            theme,
            w * status.height.max(1) as usize,
        ))
        .wrap(Wrap { trim: true }),
        status,
    );
}

/// Where labelling `input` writes: `<workspace>/predictions/<time>-<file stem>.jsonl`.
pub fn result_path(workspace: &Path, input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "texts".into());
    workspace.join("predictions").join(format!(
        "{}-{stem}.jsonl",
        crate::data::time::compact(std::time::SystemTime::now())
    ))
}

/// What the evaluation is doing, or why it failed, or its last warning.
fn status_line<'a>(e: &EvaluateState, shared: &Shared, theme: &Theme, w: usize) -> Line<'a> {
    if let Some(j) = shared.job.filter(|j| j.kind == JobKind::Predict) {
        let name = e.labelling.as_ref().map_or("", |(n, _)| n.as_str());
        let mut s = format!(
            "labelling with {name} · {}/{} texts · {:.1} texts/s · {}",
            j.done,
            j.total,
            j.tokens_per_second,
            eta_text(j.eta_seconds)
        );
        if j.stopping {
            s.push_str(" · stopping…");
        }
        return Line::styled(truncate(&s, w), theme.info());
    }
    if shared.queued == Some(JobKind::Predict) {
        return Line::styled("waiting for the model…", theme.info());
    }
    let job = shared.job.filter(|j| j.kind == JobKind::Evaluate);
    if let Some(j) = job {
        let mut s = match &e.stage {
            Some((name, i, n)) => format!("evaluating {name} ({}/{n})", i + 1),
            None => "reading the test set…".into(),
        };
        s.push_str(&format!(
            " · {}/{} rows · {}",
            j.done,
            j.total,
            eta_text(j.eta_seconds)
        ));
        if j.stopping {
            s.push_str(" · stopping…");
        }
        return Line::styled(truncate(&s, w), theme.info());
    }
    if shared.queued == Some(JobKind::Evaluate) {
        return Line::styled("waiting for the model…", theme.info());
    }
    if let Some(err) = &e.error {
        return Line::styled(truncate(err, w), theme.error());
    }
    if let Some(note) = e.notes.last() {
        let more = if e.notes.len() > 1 {
            format!(" (+{} more)", e.notes.len() - 1)
        } else {
            String::new()
        };
        return Line::styled(truncate(&format!("{note}{more}"), w), theme.warn());
    }
    Line::styled(
        truncate(
            "g evaluates ICL (seeds as demonstrations), every LoRA run and student; l labels a \
             file with the selected one; s stops",
            w,
        ),
        theme.dim(),
    )
}

/// `11-21 10:24` from a run folder named `20261121-102403-…`: tells two runs of one kind apart.
fn run_time(name: &str) -> String {
    let b = name.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() >= 15 && digits(0..8) && b[8] == b'-' && digits(9..15) {
        format!(
            "{}-{} {}:{}",
            &name[4..6],
            &name[6..8],
            &name[9..11],
            &name[11..13]
        )
    } else {
        truncate(name, 12)
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}", x * 100.0))
        .unwrap_or_else(|| "–".into())
}

/// Each run trained on more than the seeds beside the latest seeds-only run scored on the same
/// rows.
pub fn twins(runs: &[&RunInfo]) -> Vec<Option<(usize, Paired)>> {
    let scored: Vec<Scored> = runs
        .iter()
        .map(|r| {
            let lora = r.adapter.is_some();
            let e = r.eval.as_ref();
            Scored {
                seeds_only: lora && r.trained_on.as_ref().is_some_and(TrainedOn::seeds_only),
                with_extra: lora && r.trained_on.as_ref().is_some_and(|t| !t.seeds_only()),
                members: r.trained_on.as_ref().map_or(1, TrainedOn::members),
                test_file: e.and_then(|e| e.on.as_deref()).unwrap_or(""),
                correct: e.map_or(&[][..], |e| &e.correct),
            }
        })
        .collect();
    against_twins(&scored)
}

fn draw_comparison(
    frame: &mut Frame,
    area: Rect,
    state: &EvaluateState,
    runs: &[&RunInfo],
    theme: &Theme,
) {
    let wide = area.width >= 50;
    let twins = twins(runs);
    let any_twin = twins.iter().any(Option::is_some);
    let rows: Vec<Row> = runs
        .iter()
        .zip(&twins)
        .map(|(r, twin)| {
            let e = r.eval.as_ref();
            let name = if r.teacher.is_some() {
                format!("└ {}", r.model_name())
            } else {
                r.model_name()
            };
            let mut cells = vec![
                Cell::from(name),
                Cell::from(pct(e.and_then(|e| e.accuracy))),
                Cell::from(pct(e.and_then(|e| e.macro_f1))),
                Cell::from(
                    e.and_then(|e| e.n)
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                ),
            ];
            // Beside the seeds-only twin where there is room (the selected run's comparison
            // is in the results pane at any width); otherwise the run's time.
            if wide && any_twin {
                cells.push(match twin {
                    Some((_, p)) if p.worse() => Cell::from(Span::styled(
                        format!("{:+.1} worse", p.diff * 100.0),
                        theme.error(),
                    )),
                    Some((_, p)) => Cell::from(format!(
                        "{:+.1}{}",
                        p.diff * 100.0,
                        if p.better() { " better" } else { "" }
                    )),
                    None => Cell::from(""),
                });
            } else if wide {
                cells.push(Cell::from(Span::styled(run_time(&r.name), theme.dim())));
            }
            Row::new(cells)
        })
        .collect();
    let empty = rows.is_empty();
    let mut widths = vec![
        Constraint::Length(15),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(5),
    ];
    let mut header = vec!["model", "acc %", "F1 %", "n"];
    if wide {
        widths.push(Constraint::Min(4));
        header.push(if any_twin { "vs seeds" } else { "run" });
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.dim()))
        .row_highlight_style(theme.selected())
        .highlight_symbol("›")
        .block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .border_style(theme.border(false))
                .title(Line::styled(" Comparison ", theme.title())),
        )
        .style(theme.text());
    let sel = state.selected.row(runs);
    let mut state = TableState::default().with_selected((!empty).then_some(sel));
    frame.render_stateful_widget(table, area, &mut state);
}

#[allow(clippy::too_many_arguments)]
fn draw_results(
    frame: &mut Frame,
    area: Rect,
    run: &RunInfo,
    eval: &EvalInfo,
    against: Option<&(String, Paired)>,
    beside: Option<&(String, bool)>,
    ws: &ReadModel,
    theme: &Theme,
) {
    let labels: Vec<String> = ws.task().labels.iter().map(|l| l.name.clone()).collect();
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border(false))
        .title(Line::styled(
            format!(" {} · {} ", run.model_name(), run.name),
            theme.title(),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let confusion_h = eval
        .confusion
        .as_ref()
        .map(|(l, _)| l.len() as u16 + 2)
        .unwrap_or(0);
    let [head, twin_area, table_area, conf_area] = Layout::vertical([
        Constraint::Length(1),
        // A student's line beside its teacher wraps, on up to three lines.
        Constraint::Length(match beside {
            Some((text, _)) => (text.chars().count() as u16 / inner.width.max(1) + 1).min(3),
            None => u16::from(against.is_some()),
        }),
        Constraint::Length(eval.per_class.len() as u16 + 1),
        Constraint::Length(confusion_h),
    ])
    .areas(inner);
    if let Some((twin, p)) = against {
        // The question a user of synthetic data has: did the extra examples help?
        let (text, style) = if p.worse() {
            (
                format!("worse than the seeds alone ({twin}): {}", cell(p)),
                theme.error(),
            )
        } else {
            (
                format!("vs the seeds alone ({twin}): {}", cell(p)),
                theme.text(),
            )
        };
        frame.render_widget(
            Paragraph::new(Line::styled(
                truncate(&text, twin_area.width as usize),
                style,
            )),
            twin_area,
        );
    }
    if let Some((text, missing)) = beside {
        // A student's question: what does its speed cost against the teacher it learnt from?
        let style = if *missing { theme.dim() } else { theme.text() };
        frame.render_widget(
            Paragraph::new(Line::styled(
                truncate(text, (twin_area.width * twin_area.height) as usize),
                style,
            ))
            .wrap(Wrap { trim: true }),
            twin_area,
        );
    }
    let mut head_text = format!(
        "accuracy {}%  macro-F1 {}%",
        pct(eval.accuracy),
        pct(eval.macro_f1)
    );
    if let Some(n) = eval.n {
        head_text.push_str(&format!("  on {n} rows"));
    }
    if let Some(on) = &eval.on {
        head_text.push_str(&format!(" ({on})"));
    }
    if let Some(r) = eval.items_per_s {
        head_text.push_str(&format!("  {} texts/s", rate_text(r)));
    }
    // `accuracy 75.0%  macro-F1 73.3%  on 872 rows (dev.tsv)  8.0 texts/s`
    frame.render_widget(
        Paragraph::new(Line::styled(
            truncate(&head_text, head.width as usize),
            theme.bold(),
        )),
        head,
    );
    let rows: Vec<Row> = eval
        .per_class
        .iter()
        .map(|c| {
            Row::new(vec![
                Cell::from(Span::styled(
                    c.label.clone(),
                    theme.label(label_index(&labels, &c.label)),
                )),
                Cell::from(pct(c.precision)),
                Cell::from(pct(c.recall)),
                Cell::from(pct(c.f1)),
                Cell::from(c.support.map(|s| s.to_string()).unwrap_or_default()),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(8),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Length(6),
            ],
        )
        .header(Row::new(["class", "precision", "recall", "F1", "n"]).style(theme.dim()))
        .style(theme.text()),
        table_area,
    );
    if let Some((cl, matrix)) = &eval.confusion {
        let w = cl
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 12)
            + 2;
        let mut lines = vec![Line::styled(
            "confusion: gold ↓ / predicted →".to_string(),
            theme.dim(),
        )];
        let mut header = vec![Span::raw(format!("{:<12}", ""))];
        for l in cl {
            header.push(Span::styled(
                format!("{:>w$}", truncate(l, w - 1)),
                theme.label(label_index(&labels, l)),
            ));
        }
        lines.push(Line::from(header));
        for (g, row) in matrix.iter().enumerate() {
            let mut spans = vec![Span::styled(
                format!(
                    "{:<12}",
                    truncate(cl.get(g).map(String::as_str).unwrap_or(""), 11)
                ),
                theme.label(cl.get(g).and_then(|l| label_index(&labels, l))),
            )];
            for (p, n) in row.iter().enumerate() {
                let style = if p == g { theme.ok() } else { theme.text() };
                spans.push(Span::styled(format!("{n:>w$}"), style));
            }
            lines.push(Line::from(spans));
        }
        frame.render_widget(Paragraph::new(lines), conf_area);
    }
}
