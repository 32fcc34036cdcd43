//! `seedforge predict`: label texts with a classifier — a LoRA run (its own prompt and reading)
//! or the base model zero-shot or in context — from a file or standard input, into JSONL, CSV
//! or TSV.
//!
//! A file is read whole, every row checked (bad rows named with file and line), then labelled in
//! batches sorted by length, with a progress bar on a terminal. Standard input in plain text or
//! JSONL is answered line by line, each answer flushed as soon as it is known, so `predict` can
//! sit in a pipe; TSV/CSV on standard input are read to the end first (a header row comes before
//! the rows).

use std::io::{BufRead, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::model_args::ModelArgs;
use super::task_arg::TaskArg;
use crate::data::import::Problem;
use crate::data::task::Task;
use crate::engine::eval_job::Target;
use crate::engine::predict_job::classifier_options;
use crate::eval::report::Method;
use crate::pipeline::classify::Classifier;
use crate::pipeline::predict::{
    self, BadRows, Fit, InFormat, Input, OutFormat, ReadOptions, RowWriter,
};
use crate::pipeline::prompt::Templates;
use crate::student;
use crate::train::run::{objective_of, recorded_model};
use crate::train::trainer::Objective;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The task (its labels and prompt). Default: --workspace's, else the workspace the run
    /// folder sits in, else the bundled demo task.
    #[command(flatten)]
    pub task: TaskArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// A training run's folder (adapter_config.json + adapter_model.safetensors): its adapter
    /// labels, read as the workbench reads the run. Its model is the one it recorded unless
    /// --model is given.
    #[arg(long, value_name = "RUN", conflicts_with = "method")]
    pub run: Option<PathBuf>,
    /// Without --run: zero-shot, or icl (the task's seeds as demonstrations).
    #[arg(long, value_name = "zero-shot|icl")]
    pub method: Option<Method>,
    /// zero-shot / icl: contextual calibration of the label scores (a run is read its own way).
    #[arg(long, conflicts_with = "run")]
    pub calibrate: bool,
    /// The texts: a file, or - for standard input.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// text (one a line), tsv, csv or jsonl. Default: from the extension (another file is
    /// JSONL when its first line is a JSON object, else text); standard input: text.
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<InFormat>,
    /// The column (header name or 1-based number) or JSONL field with the text. Default: the
    /// task's input field when the file has it, else `text`, `sentence`, `review`…
    #[arg(long, value_name = "NAME")]
    pub text_field: Option<String>,
    /// A column or field with each row's id, written beside its answer.
    #[arg(long, value_name = "NAME")]
    pub id_field: Option<String>,
    /// Where the answers go (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// jsonl, csv or tsv. Default: from --out's extension; JSONL on standard output.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<OutFormat>,
    /// Leave the text out of the answers (line, id, label and probabilities only).
    #[arg(long)]
    pub no_text: bool,
    /// A bad row (invalid UTF-8, empty text, malformed, too long for the model): skip it with
    /// a warning naming file and line, or fail there.
    #[arg(long, default_value = "skip", value_name = "skip|fail")]
    pub on_bad_row: BadRows,
    /// Texts scored together (files; standard input is answered one line at a time).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
}

/// The task: `--task`, else `--workspace`, else the workspace holding the run, else the demo.
pub(crate) fn load_task(
    task: &TaskArg,
    run: Option<&Path>,
    workspace: Option<&Path>,
) -> anyhow::Result<Task> {
    if task.task.is_some() {
        return task.load();
    }
    let from_run = run
        .and_then(|r| r.parent()?.parent().map(Path::to_path_buf))
        .filter(|ws| ws.join("task.toml").is_file());
    match workspace.map(Path::to_path_buf).or(from_run) {
        Some(ws) => {
            Task::load(&ws).with_context(|| format!("loading the task of {}", ws.display()))
        }
        None => {
            eprintln!("seedforge: no --task or --workspace: the bundled demo task");
            Ok(Task::demo())
        }
    }
}

/// The task name a run's `config.json` records.
fn run_task_name(run: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("task_name")?.as_str().map(String::from)
}

/// A classifier run of `task`, refused in words when it is a teacher or trained on another task.
pub(crate) fn run_target(run: &Path, task: &Task) -> anyhow::Result<Target> {
    anyhow::ensure!(
        objective_of(run)? == Objective::Classify,
        "{} is a teacher run (it writes examples); predict needs a classifier run from \
         `seedforge train`",
        run.display()
    );
    if let Some(name) = run_task_name(run) {
        anyhow::ensure!(
            name == task.name,
            "{} was trained on the task `{name}`, not `{}`; name its task with --task or \
             --workspace",
            run.display(),
            task.name
        );
    }
    Ok(Target::Lora(run.to_path_buf()))
}

/// The model to load: --model, else the one `run` recorded when it is on this machine, else
/// the default.
pub(crate) fn model_for(model: &ModelArgs, run: Option<&Path>) -> ModelArgs {
    let mut m = model.clone();
    if let (None, Some(run)) = (&m.model, run)
        && let Ok(recorded) = recorded_model(run)
        && Path::new(&recorded).is_file()
    {
        m.model = Some(PathBuf::from(recorded));
    }
    m
}

pub fn run(args: PredictArgs, workspace: Option<PathBuf>) -> anyhow::Result<()> {
    let task = load_task(&args.task, args.run.as_deref(), workspace.as_deref())?;
    let target = match (&args.run, args.method) {
        (Some(run), _) => run_target(run, &task)?,
        (None, Some(Method::Icl)) => {
            anyhow::ensure!(
                !task.seeds.is_empty(),
                "--method icl needs the task's seeds as demonstrations, and `{}` has none",
                task.name
            );
            Target::Icl
        }
        (None, Some(Method::ZeroShot)) => Target::ZeroShot,
        (None, Some(Method::Lora | Method::Student)) => {
            anyhow::bail!("--method lora / student: name the run with --run RUN")
        }
        (None, None) => {
            anyhow::bail!("which classifier? --run RUN (a trained run), or --method zero-shot|icl")
        }
    };
    // Said before anything is read or loaded.
    OutFormat::choose(args.format, args.out.as_deref()).map_err(anyhow::Error::msg)?;
    let stdin = args.input.as_os_str() == "-";
    if let Some(out) = &args.out {
        anyhow::ensure!(
            stdin || !same_file(out, &args.input),
            "--out {} is the input file; name another",
            out.display()
        );
    }
    let read = read_options(&args, &task);
    // Read a file (and say what is wrong with it) before loading a model.
    let whole = if stdin && args.input_format.unwrap_or(InFormat::Text).streams() {
        None
    } else {
        let (name, bytes) = if stdin {
            let mut b = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut b)
                .context("reading standard input")?;
            (PathBuf::from("-"), b)
        } else {
            let b = std::fs::read(&args.input)
                .with_context(|| format!("cannot read {}", args.input.display()))?;
            (args.input.clone(), b)
        };
        let r = predict::input::read_bytes(&name, &bytes, &read)?;
        eprintln!(
            "seedforge: read {} texts from {} ({}){}",
            r.inputs.len(),
            args.input.display(),
            r.columns,
            if r.problems.is_empty() {
                String::new()
            } else {
                format!("; {} bad rows skipped", r.problems.len())
            }
        );
        warn_all(&r.problems);
        Some((name, r.inputs, r.problems.len()))
    };

    if let Some(dir) = args
        .run
        .as_deref()
        .filter(|d| student::store::is_student(d))
    {
        let student = student::Student::load(dir, &burn::tensor::Device::flex())?;
        anyhow::ensure!(
            student.record.task_name == task.name,
            "{} was distilled for the task `{}`, not `{}`; name its task with --task or \
             --workspace",
            dir.display(),
            student.record.task_name,
            task.name
        );
        let label = |texts: &[&str]| student.classify(texts);
        // The student reads any length of text: every row fits.
        let fits = |_: &Path, _: &Input| Ok(None);
        let who = format!("the student {}", dir.display());
        return answer_all(&args, &task, whole, &label, &fits, &who);
    }

    let (mut loaded, _) = model_for(&args.model, args.run.as_deref()).load()?;
    if let Target::Lora(dir) = &target {
        super::model_args::attach_adapter(&mut loaded.model, dir)?;
    }
    let templates = Templates::for_task(&task)?;
    let batch = if whole.is_some() {
        args.batch.max(1)
    } else {
        1
    };
    let options = classifier_options(&target, &task, args.calibrate, batch)?;
    let reading = crate::eval::reading::Reading::describe(
        options.calibrate,
        Some(options.calibration_strength),
    );
    let classifier = Classifier::new(&loaded.model, &loaded.tokenizer, &task, &templates, options)?;
    let fit = Fit::new(&classifier, &loaded.tokenizer, loaded.model.max_positions())?;
    let who = format!(
        "{}{}",
        match &target {
            Target::Lora(dir) => format!("the run {}", dir.display()),
            Target::Icl => format!("in-context learning ({} seeds)", task.seeds.len()),
            Target::ZeroShot => "zero-shot".to_string(),
        },
        if reading.is_empty() {
            String::new()
        } else {
            format!(" ({reading})")
        }
    );
    let label = predict::with_classifier(&classifier);
    let fits = |file: &Path, input: &Input| Ok(fit.check(file, input)?);
    answer_all(&args, &task, whole, &label, &fits, &who)
}

fn read_options(args: &PredictArgs, task: &Task) -> ReadOptions {
    ReadOptions {
        format: args.input_format,
        text_field: args.text_field.clone(),
        task_field: Some(task.input_field.clone()),
        id_field: args.id_field.clone(),
        bad_rows: args.on_bad_row,
    }
}

/// Whether a row fits the classifier (`None`) or is a bad row.
type Fits<'a> = dyn Fn(&Path, &Input) -> anyhow::Result<Option<Problem>> + 'a;

/// Labels the rows read (`whole`) or standard input line by line, writing every answer.
fn answer_all(
    args: &PredictArgs,
    task: &Task,
    whole: Option<(PathBuf, Vec<Input>, usize)>,
    label: &predict::Label,
    fits: &Fits,
    who: &str,
) -> anyhow::Result<()> {
    eprintln!("seedforge: labelling with {who}");
    let batch = args.batch.max(1);
    // Every row of a file is checked against the context before anything is written.
    let prepared = match whole {
        Some((name, inputs, bad)) => {
            let mut ok = Vec::with_capacity(inputs.len());
            let mut long = Vec::new();
            for i in inputs {
                match fits(&name, &i)? {
                    None => ok.push(i),
                    Some(p) => long.push(p),
                }
            }
            if let (BadRows::Fail, Some(p)) = (args.on_bad_row, long.first()) {
                anyhow::bail!("{p} (--on-bad-row skip goes on without such rows)");
            }
            warn_all(&long);
            Some((ok, bad + long.len()))
        }
        None => None,
    };
    let labels: Vec<String> = task.label_names().into_iter().map(String::from).collect();
    let with_id = args.id_field.is_some();
    let sink: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let streaming = prepared.is_none();
    let mut writer = RowWriter::new(
        sink,
        OutFormat::choose(args.format, args.out.as_deref()).map_err(anyhow::Error::msg)?,
        labels,
        with_id,
        !args.no_text,
        streaming || args.out.is_none(),
    );
    let read = read_options(args, task);
    let started = Instant::now();
    let (labelled, skipped) = match prepared {
        Some((inputs, bad)) => (label_file(label, &inputs, batch, &mut writer)?, bad),
        None => stream(label, fits, &read, &mut writer)?,
    };
    writer.finish().context("writing the answers")?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "seedforge: labelled {labelled} texts in {secs:.1} s ({:.1} texts/s){}{}",
        labelled as f64 / secs.max(1e-9),
        if skipped > 0 {
            format!("; {skipped} bad rows skipped")
        } else {
            String::new()
        },
        args.out
            .as_ref()
            .map(|p| format!("; saved {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn warn_all(problems: &[Problem]) {
    for p in problems {
        eprintln!("warning: {p}");
    }
}

/// Labels a file's rows in batches, a progress bar with texts/s on a terminal.
fn label_file(
    label: &predict::Label,
    inputs: &[Input],
    batch: usize,
    writer: &mut RowWriter<Box<dyn Write>>,
) -> anyhow::Result<usize> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(inputs.len() as u64);
        if let Ok(style) =
            ProgressStyle::with_template("  {bar:40} {pos}/{len} texts ({per_sec}, {eta} left)")
        {
            b.set_style(style);
        }
        b
    });
    let mut done = 0;
    predict::label_all(
        label,
        inputs,
        batch,
        &mut |rows, preds| {
            for (r, p) in rows.iter().zip(&preds) {
                writer
                    .write(&predict::out_row(r, p))
                    .context("writing the answers")?;
            }
            done += rows.len();
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
            Ok(())
        },
        &|| false,
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(done)
}

/// Standard input, line by line: each text is labelled and its answer flushed before the next
/// line is read. Returns (labelled, skipped).
fn stream(
    label: &predict::Label,
    fits: &Fits,
    read: &ReadOptions,
    writer: &mut RowWriter<Box<dyn Write>>,
) -> anyhow::Result<(usize, usize)> {
    let name = Path::new("-");
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    let (mut n, mut labelled, mut skipped) = (0, 0, 0);
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("reading standard input")?
            == 0
        {
            break;
        }
        n += 1;
        let bytes = line.strip_suffix(b"\n").unwrap_or(&line);
        let checked = match predict::input::stream_line(name, n, bytes, read) {
            Ok(Some(i)) => fits(name, &i)?.map_or(Ok(i), Err),
            Ok(None) => continue,
            Err(p) => Err(p),
        };
        match checked {
            Ok(i) => {
                let p = label(&[i.text.as_str()])?
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("the classifier gave no answer"))?;
                writer
                    .write(&predict::out_row(&i, &p))
                    .context("writing the answers")?;
                labelled += 1;
            }
            Err(p) if read.bad_rows == BadRows::Fail => {
                anyhow::bail!("{p} (--on-bad-row skip goes on without such rows)")
            }
            Err(p) => {
                eprintln!("warning: {p}");
                skipped += 1;
            }
        }
    }
    Ok((labelled, skipped))
}
