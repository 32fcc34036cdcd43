//! The terminal workbench: six screens (Seeds, Generate, Review, Rejected, Train, Evaluate)
//! over one workspace, driving the engine.
//!
//! ```text
//! keys ──> keymap ──> Action ──┐
//! engine Event ──> Action ─────┴──> App::update (the only place state changes) ──> Effects
//!                                        │                                     (to the engine)
//!                  view::draw(&App) <────┘  at most 30 frames/s, only when something changed
//! ```
//!
//! - [`app`]: the routing and `update`; [`component`]: the shape of a screen that owns its state
//!   and dialogs; [`action`]: what can happen; [`keymap`]: the one key table
//!   (the help overlay and the README are generated from it).
//! - [`read_model`]: the screens' copy of the workspace, updated from the engine's events; the
//!   engine alone writes the workspace (decisions go to it as [`crate::engine::Write`]s).
//! - [`event_loop`]: tokio `select!` over terminal input, engine events and the frame clock.
//! - [`view`]: the frame; [`screens`]: one module per screen (state, actions, drawing);
//!   [`widgets`]: editor, form, probability bars, popups; [`help`], [`status_bar`].
//! - [`theme`]: `themes/*.toml` and the user's themes; [`terminal`]: raw mode, alternate
//!   screen, the panic hook that gives the terminal back.
//!
//! The workbench never touches a tensor: all model work is a [`crate::engine::Command`].

pub mod action;
pub mod app;
pub mod component;
pub mod event_loop;
pub mod help;
pub mod keymap;
pub mod read_model;
pub mod ready_queue;
pub mod screens;
pub mod status_bar;
pub mod terminal;
pub mod theme;
pub mod view;
pub mod widgets;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};

pub use app::App;

use crate::data::task::Task;
use crate::data::workspace::{Workspace, WorkspaceError};
use crate::engine::{Engine, EngineConfig, Sink};
use crate::llm::device::DeviceChoice;

/// How the workbench was asked to start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The workspace; none: the demo workspace (created on first use).
    pub workspace: Option<PathBuf>,
    /// A theme name (bundled or the user's); none: the config file's, else `dark`.
    pub theme: Option<String>,
    pub model: Option<PathBuf>,
    pub device: DeviceChoice,
    pub weights: crate::llm::quant::WeightMode,
}

/// Where the demo workspace lives: `$SEEDFORGE_DATA_DIR/demo`, else the platform data folder.
pub fn demo_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SEEDFORGE_DATA_DIR") {
        return Ok(PathBuf::from(dir).join("demo"));
    }
    directories::ProjectDirs::from("", "", "seedforge")
        .map(|d| d.data_dir().join("demo"))
        .context("no home folder to keep the demo workspace in; pass --workspace DIR")
}

/// Opens the workspace, creating the demo one on first use. Fails (before the terminal is
/// touched) when another seedforge holds it.
pub fn open_workspace(dir: &Path, demo: bool) -> anyhow::Result<Workspace> {
    if demo && !dir.join(crate::data::workspace::TASK_FILE).exists() {
        return Workspace::create(dir, &Task::demo(), &[])
            .with_context(|| format!("cannot create the demo workspace in {}", dir.display()));
    }
    match Workspace::open(dir) {
        Ok(ws) => Ok(ws),
        Err(WorkspaceError::NotAWorkspace(d)) => bail!(
            "{} is not a workspace (no task.toml); create one with `seedforge init --workspace {}`",
            d.display(),
            d.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot open the workspace {}", dir.display())),
    }
}

/// The theme named in `<config dir>/config.toml` (`theme = "light"`), if any.
fn configured_theme() -> anyhow::Result<Option<String>> {
    let Some(dir) = theme::user_dir().and_then(|d| d.parent().map(Path::to_path_buf)) else {
        return Ok(None);
    };
    let path = dir.join("config.toml");
    if !path.is_file() {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Config {
        theme: Option<String>,
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let config: Config =
        toml::from_str(&text).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(config.theme)
}

/// Opens the workbench and runs it until the user quits.
pub fn run(opts: Options) -> anyhow::Result<()> {
    // Everything that can fail for a reason the user should read happens before the terminal
    // changes, so the error is printed on a normal screen (a workspace held by another
    // seedforge is refused here, with the holder's pid).
    let (dir, demo) = match &opts.workspace {
        Some(d) => (d.clone(), false),
        None => (demo_dir()?, true),
    };
    let ws = open_workspace(&dir, demo)?;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!(
            "the workbench needs a terminal; without one use the headless commands \
             (seedforge --help lists them)"
        );
    }
    let truecolor = theme::truecolor_from_env();
    let name = match opts.theme.clone() {
        Some(n) => n,
        None => configured_theme()?.unwrap_or_else(|| theme::DEFAULT_THEME.to_string()),
    };
    let user_themes = theme::user_dir();
    let theme = theme::load(&name, user_themes.as_deref(), truecolor)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;

    // The app keeps a copy to draw from; the engine owns the workspace from here on.
    let mut app = App::new(read_model::ReadModel::of(&ws), theme);
    let ws = Arc::new(Mutex::new(ws));
    app.truecolor = truecolor;
    terminal::install_panic_hook();
    let mut guard = terminal::enter().context("cannot set up the terminal")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::start(
        EngineConfig {
            model: opts.model.clone(),
            device: opts.device,
            weights: opts.weights,
        },
        ws,
        Sink::new(tx),
    );
    let result = runtime.block_on(event_loop::run(&mut app, &engine, rx, &mut guard.terminal));
    drop(guard);
    // A running job stops within one decoding step; what it wrote is already in the journal.
    engine.shutdown();
    result
}
