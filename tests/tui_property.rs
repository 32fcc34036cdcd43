//! The workbench under random input: any sequence of keys and pastes on a workspace with items
//! leaves the app without a panic (drawing included), and the journal on disk, replayed from
//! scratch, gives exactly the state the app shows (items, decisions, undo history, seeds).
//! A failing case is printed by proptest as the shortest key sequence that fails, and it is
//! replayed from `proptest-regressions/` on the next run.

mod tui_support;

use proptest::prelude::*;
use ratatui::crossterm::event::Event as TermEvent;
use seedforge::data::workspace::Snapshot;
use seedforge::tui::event_loop::on_terminal;
use tui_support::*;

/// What a user may do: a key (as `tui_support::key` names it) or a paste.
#[derive(Debug, Clone)]
enum Input {
    Key(&'static str),
    Paste(&'static str),
}

/// Every key some screen or dialog answers, plus a few it does not. `q` is left out: it ends
/// the session (asked for with `y` when a job is queued, which `g` and `A` do here).
const KEYS: &[&str] = &[
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "tab",
    "backtab",
    "a",
    "x",
    "X",
    "s",
    "space",
    "e",
    "l",
    "b",
    "u",
    "U",
    "^r",
    "up",
    "down",
    "left",
    "right",
    "home",
    "end",
    "enter",
    "esc",
    "backspace",
    "r",
    "f",
    "c",
    "o",
    "d",
    "y",
    "n",
    "g",
    "p",
    "t",
    "A",
    "+",
    "-",
    "?",
    "^u",
    "z",
    "7",
    "9",
];

const PASTES: &[&str] = &[
    "a better line\nax",
    "q",
    "0.5",
    "off topic\r\nreally",
    "",
    "ünïcødé ✓\ttab",
];

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        9 => proptest::sample::select(KEYS).prop_map(Input::Key),
        1 => proptest::sample::select(PASTES).prop_map(Input::Paste),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_input_keeps_the_app_whole_and_the_journal_equal_to_what_it_shows(
        inputs in proptest::collection::vec(input(), 1..60)
    ) {
        let f = fixture();
        let mut app = app(&f);
        for i in &inputs {
            match i {
                Input::Key(k) => app.key(key(k)),
                Input::Paste(p) => {
                    on_terminal(&mut app, TermEvent::Paste((*p).to_string()));
                    app.pump();
                }
            }
            // Drawn after every input, at the smallest size drawn in full.
            render(&app, 60, 16);
            prop_assert!(!app.should_quit(), "only q quits, and q is never pressed");
        }
        render(&app, 120, 36);
        let replayed = Snapshot::read(&f.dir).unwrap();
        let ws = f.ws.lock().unwrap();
        prop_assert_eq!(replayed.state.items(), ws.state().items());
        prop_assert_eq!(replayed.state.totals(), ws.state().totals());
        prop_assert_eq!(replayed.state.undo_target(), ws.state().undo_target());
        prop_assert_eq!(replayed.state.can_redo(), ws.state().can_redo());
        prop_assert_eq!(&replayed.task.seeds, &ws.task().seeds);
        // What the screens draw is what the journal says.
        prop_assert_eq!(replayed.state.items(), app.ws.state().items());
        prop_assert_eq!(replayed.state.totals(), app.ws.state().totals());
        prop_assert_eq!(&replayed.task.seeds, &app.ws.task().seeds);
    }
}
