//! Taking the terminal (raw mode, alternate screen) and always giving it back: on a normal
//! exit, on an error (the guard's `Drop`), and on a panic of the UI thread (the panic hook
//! restores the screen before the panic message is printed).

use std::io::{self, Stdout};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ThreadId;

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

static ACTIVE: AtomicBool = AtomicBool::new(false);
static UI_THREAD: OnceLock<ThreadId> = OnceLock::new();

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// The terminal, in raw mode on the alternate screen while this lives.
pub struct TerminalGuard {
    pub terminal: Term,
}

/// Switches the terminal to raw mode and the alternate screen.
pub fn enter() -> io::Result<TerminalGuard> {
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let setup = (|| {
        let mut stdout = io::stdout();
        write_enter(&mut stdout)?;
        let mut terminal = Terminal::new(CrosstermBackend::new(stdout))?;
        terminal.hide_cursor()?;
        terminal.clear()?;
        Ok(terminal)
    })();
    match setup {
        Ok(terminal) => Ok(TerminalGuard { terminal }),
        Err(e) => {
            restore();
            Err(e)
        }
    }
}

/// Gives the terminal back (idempotent: only the first call after `enter` does anything).
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = write_leave(&mut io::stdout());
    }
}

/// The alternate screen and bracketed paste: without the latter a terminal types a paste as
/// keys, and a pasted `a`, `x` or `q` would accept, reject or quit.
fn write_enter(w: &mut impl io::Write) -> io::Result<()> {
    execute!(w, EnterAlternateScreen, EnableBracketedPaste)
}

/// Undoes [`write_enter`], so the shell after us does not receive pastes wrapped in markers.
fn write_leave(w: &mut impl io::Write) -> io::Result<()> {
    execute!(w, DisableBracketedPaste, LeaveAlternateScreen, Show)
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Restores the terminal before a panic of the UI thread is reported. Panics on other threads
/// (the engine catches its jobs' panics and reports them as failed jobs) leave the screen alone:
/// printing over the running UI would garble it.
pub fn install_panic_hook() {
    let _ = UI_THREAD.set(std::thread::current().id());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_ui = UI_THREAD.get() == Some(&std::thread::current().id());
        if on_ui || !ACTIVE.load(Ordering::SeqCst) {
            restore();
            previous(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_paste_is_turned_on_with_the_screen_and_off_with_it() {
        let mut on = Vec::new();
        write_enter(&mut on).unwrap();
        let on = String::from_utf8(on).unwrap();
        assert!(on.contains("\x1b[?2004h"), "enter sent {on:?}");
        assert!(on.contains("\x1b[?1049h"), "enter sent {on:?}");
        let mut off = Vec::new();
        write_leave(&mut off).unwrap();
        let off = String::from_utf8(off).unwrap();
        assert!(off.contains("\x1b[?2004l"), "leave sent {off:?}");
        assert!(off.contains("\x1b[?1049l"), "leave sent {off:?}");
    }
}
