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

/// What the frames count and list without walking the workspace (the read model's queue less
/// the items held back) is what walking every pending item and asking each one gives.
fn ready_queue_equals_a_full_walk(app: &seedforge::tui::app::App) -> Result<(), TestCaseError> {
    let ws = &app.ws;
    let pending: Vec<_> = ws.state().review_queue().collect();
    let ready: Vec<&str> = pending
        .iter()
        .filter(|i| app.is_ready(i))
        .map(|i| i.id().as_str())
        .collect();
    let queue = app.ready_queue();
    prop_assert_eq!(ws.queue_len(), pending.len());
    prop_assert_eq!(queue.len(), ready.len());
    prop_assert_eq!(queue.waiting(), pending.len() - ready.len());
    let listed: Vec<&str> = queue.iter().map(|i| i.id().as_str()).collect();
    prop_assert_eq!(&listed, &ready);
    for it in &pending {
        let place = ready.iter().position(|r| *r == it.id().as_str());
        prop_assert_eq!(queue.position(it.id()), place);
        let after: Vec<&str> = queue
            .after(Some(it.id()))
            .map(|i| i.id().as_str())
            .collect();
        let expected: Vec<&str> = match place {
            Some(p) => ready[p + 1..].iter().chain(&ready[..p]).copied().collect(),
            None => ready.clone(),
        };
        prop_assert_eq!(after, expected);
    }
    let (count, _) = app.tab_counts();
    prop_assert_eq!(count, ready.len());
    Ok(())
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
            ready_queue_equals_a_full_walk(&app)?;
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
