//! The loop: terminal input (read on its own thread), engine events and a frame clock, joined
//! with `tokio::select!`. Every pending event is drained into `App::update` before anything is
//! drawn, and a frame is drawn at most every [`FRAME`] and only when something changed, so a
//! stream of tokens costs one draw per frame, not one per token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{self, Event as TermEvent};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::MissedTickBehavior;

use super::action::Action;
use super::app::{App, Effect};
use super::view;
use crate::engine::{Command, Engine, Event, JobKind, WriteError};

/// The shortest time between two frames (30 per second at most).
pub const FRAME: Duration = Duration::from_millis(33);

/// Reads terminal events on a thread of its own (crossterm's reads block) and forwards them.
struct Input {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Input {
    fn spawn(tx: UnboundedSender<std::io::Result<TermEvent>>) -> Input {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("seedforge-input".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match event::poll(Duration::from_millis(50)) {
                        Ok(false) => {}
                        Ok(true) => {
                            if tx.send(event::read()).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            })
            .ok();
        Input { stop, thread }
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One terminal event applied to the app (public so tests feed events as the terminal sends them).
pub fn on_terminal(app: &mut App, event: TermEvent) {
    match event {
        TermEvent::Key(key) => app.handle_key(key),
        TermEvent::Paste(text) => app.paste(&text),
        TermEvent::Resize(width, height) => app.update(Action::Resize { width, height }),
        _ => {}
    }
}

/// Hands the app's writes and effects to the engine.
fn apply_effects(app: &mut App, engine: &Engine) {
    for (request, write) in app.take_writes() {
        if engine.write(request, write).is_err() {
            app.update(Action::Engine(Box::new(Event::Written {
                request,
                result: Err(WriteError {
                    refused: false,
                    message: "the engine has stopped; restart seedforge".into(),
                }),
            })));
        }
    }
    for effect in app.take_effects() {
        match effect {
            Effect::Send(command) => {
                let kind = match &command {
                    Command::Generate { .. } => JobKind::Generate,
                    Command::Recheck { .. } => JobKind::Recheck,
                    Command::Annotate(_) => JobKind::Annotate,
                    Command::Train(_) | Command::ResumeTrain { .. } => JobKind::Train,
                    Command::Evaluate(_) => JobKind::Evaluate,
                    Command::Predict(_) => JobKind::Predict,
                    Command::Distil(_) => JobKind::Distil,
                    Command::Shutdown => continue,
                };
                if engine.send(command).is_err() {
                    app.update(Action::Engine(Box::new(Event::JobFailed {
                        job: 0,
                        kind,
                        error: "the engine has stopped; restart seedforge".into(),
                    })));
                }
            }
            Effect::Cancel => engine.cancel(),
            Effect::Pause(p) => engine.set_paused(p),
        }
    }
}

/// Runs until the app asks to quit.
pub async fn run<B: Backend>(
    app: &mut App,
    engine: &Engine,
    mut engine_rx: UnboundedReceiver<Event>,
    terminal: &mut Terminal<B>,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let (input_tx, mut input_rx) = unbounded_channel();
    let _input = Input::spawn(input_tx);
    let mut clock = tokio::time::interval(FRAME);
    clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut dirty = true;
    if let Ok(size) = terminal.size() {
        app.update(Action::Resize {
            width: size.width,
            height: size.height,
        });
    }
    loop {
        tokio::select! {
            input = input_rx.recv() => {
                let Some(first) = input else {
                    anyhow::bail!("the terminal input stopped");
                };
                on_terminal(app, first.context("reading the terminal")?);
                while let Ok(more) = input_rx.try_recv() {
                    on_terminal(app, more.context("reading the terminal")?);
                }
                dirty = true;
            }
            Some(event) = engine_rx.recv() => {
                app.update(Action::Engine(Box::new(event)));
                while let Ok(more) = engine_rx.try_recv() {
                    app.update(Action::Engine(Box::new(more)));
                }
                dirty = true;
            }
            _ = clock.tick() => {
                // A server's check reports from a thread of its own.
                if dirty || app.generate.server_state.take_news() {
                    terminal.draw(|f| view::draw(f, app)).context("drawing")?;
                    dirty = false;
                }
            }
        }
        apply_effects(app, engine);
        if app.should_quit() {
            return Ok(());
        }
    }
}
