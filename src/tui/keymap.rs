//! The one table of keys: every binding the workbench answers, by context. Keys become
//! [`Action`]s here and nowhere else; the help overlay and the README's key table are generated
//! from the same table, so they cannot drift apart.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::Action;
use super::screens::Screen;

/// Where a key is read. A dialog or editor that is open takes every key (its context alone is
/// consulted); otherwise the screen's context is tried first, then [`Context::Global`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Global,
    Seeds,
    Generate,
    Review,
    Rejected,
    Train,
    Evaluate,
    TextInput,
    Picker,
    Bulk,
    Detail,
    Confirm,
    Help,
}

impl Context {
    /// In the order the help lists them.
    pub const ALL: [Context; 13] = [
        Context::Global,
        Context::Seeds,
        Context::Generate,
        Context::Review,
        Context::Rejected,
        Context::Train,
        Context::Evaluate,
        Context::TextInput,
        Context::Picker,
        Context::Bulk,
        Context::Detail,
        Context::Confirm,
        Context::Help,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Seeds => "Seeds",
            Context::Generate => "Generate",
            Context::Review => "Review",
            Context::Rejected => "Rejected",
            Context::Train => "Train",
            Context::Evaluate => "Evaluate",
            Context::TextInput => "Editing text (in-place editor, value prompts)",
            Context::Picker => "Choosing a label",
            Context::Bulk => "Bulk decision",
            Context::Detail => "Item detail (Rejected)",
            Context::Confirm => "Confirmation",
            Context::Help => "This help",
        }
    }

    pub fn of_screen(screen: Screen) -> Context {
        match screen {
            Screen::Seeds => Context::Seeds,
            Screen::Generate => Context::Generate,
            Screen::Review => Context::Review,
            Screen::Rejected => Context::Rejected,
            Screen::Train => Context::Train,
            Screen::Evaluate => Context::Evaluate,
        }
    }
}

/// A key as the table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A character typed without ctrl or alt (shift is part of the character).
    Char(char),
    Ctrl(char),
    Code(KeyCode),
    /// `1`–`9`, giving [`Action::Pick`] with the digit's 0-based index.
    Digit,
    /// Any printable character, giving [`Action::Input`].
    Text,
}

impl Key {
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "space".into(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("ctrl-{c}"),
            Key::Digit => "1-9".into(),
            Key::Text => "(type)".into(),
            Key::Code(code) => match code {
                KeyCode::Enter => "enter".into(),
                KeyCode::Esc => "esc".into(),
                KeyCode::Tab => "tab".into(),
                KeyCode::BackTab => "shift-tab".into(),
                KeyCode::Up => "↑".into(),
                KeyCode::Down => "↓".into(),
                KeyCode::Left => "←".into(),
                KeyCode::Right => "→".into(),
                KeyCode::Home => "home".into(),
                KeyCode::End => "end".into(),
                KeyCode::PageUp => "pgup".into(),
                KeyCode::PageDown => "pgdn".into(),
                KeyCode::Backspace => "backspace".into(),
                KeyCode::Delete => "del".into(),
                other => format!("{other:?}").to_lowercase(),
            },
        }
    }
}

/// One row of the table.
pub struct Binding {
    pub context: Context,
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
}

use Key::{Char, Code, Ctrl, Digit, Text};
use KeyCode::{
    BackTab, Backspace, Delete, Down, End, Enter, Esc, Home, Left, PageDown, PageUp, Right, Tab, Up,
};

const fn b(context: Context, keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding {
        context,
        keys,
        action,
        help,
    }
}

/// Every key the workbench answers (one line a binding; rustfmt would spread each over five).
#[rustfmt::skip]
pub static BINDINGS: &[Binding] = &[
    // Everywhere (when no dialog is open).
    b(Context::Global, &[Code(Tab)], Action::NextScreen, "next screen"),
    b(Context::Global, &[Code(BackTab)], Action::PrevScreen, "previous screen"),
    b(Context::Global, &[Char('1')], Action::GoTo(Screen::Seeds), "Seeds"),
    b(Context::Global, &[Char('2')], Action::GoTo(Screen::Generate), "Generate"),
    b(Context::Global, &[Char('3')], Action::GoTo(Screen::Review), "Review"),
    b(Context::Global, &[Char('4')], Action::GoTo(Screen::Rejected), "Rejected"),
    b(Context::Global, &[Char('5')], Action::GoTo(Screen::Train), "Train"),
    b(Context::Global, &[Char('6')], Action::GoTo(Screen::Evaluate), "Evaluate"),
    b(Context::Global, &[Char('u')], Action::Undo, "undo the last decision (again: further back)"),
    b(Context::Global, &[Char('U'), Ctrl('r')], Action::Redo, "redo"),
    b(Context::Global, &[Char('?')], Action::ToggleHelp, "this help"),
    b(Context::Global, &[Char('T')], Action::CycleTheme, "next colour theme"),
    b(Context::Global, &[Ctrl('c')], Action::Interrupt, "stop the running job; quit when none runs"),
    b(Context::Global, &[Char('q')], Action::Quit, "quit (asks when a job runs)"),
    // Seeds.
    b(Context::Seeds, &[Code(Up), Char('k')], Action::Up, "previous seed"),
    b(Context::Seeds, &[Code(Down), Char('j')], Action::Down, "next seed"),
    b(Context::Seeds, &[Code(PageUp)], Action::PageUp, "page up"),
    b(Context::Seeds, &[Code(PageDown)], Action::PageDown, "page down"),
    b(Context::Seeds, &[Code(Home)], Action::First, "first seed"),
    b(Context::Seeds, &[Code(End)], Action::Last, "last seed"),
    b(Context::Seeds, &[Char('a')], Action::AddSeed, "add a seed"),
    b(Context::Seeds, &[Char('e'), Code(Enter)], Action::EditSeed, "edit the seed"),
    b(Context::Seeds, &[Char('d'), Code(Delete)], Action::DeleteSeed, "delete the seed (asks)"),
    // Generate.
    b(Context::Generate, &[Code(Up), Char('k')], Action::Up, "previous setting"),
    b(Context::Generate, &[Code(Down), Char('j')], Action::Down, "next setting"),
    b(Context::Generate, &[Code(Left), Char('-')], Action::Decrease, "lower the setting"),
    b(Context::Generate, &[Code(Right), Char('+'), Char('=')], Action::Increase, "raise the setting"),
    b(Context::Generate, &[Code(Enter)], Action::EditField, "type a value for the setting"),
    b(Context::Generate, &[Char('g')], Action::Start, "start generating"),
    b(Context::Generate, &[Char('A')], Action::Annotate, "annotate: label the file's texts into review"),
    b(Context::Generate, &[Char('s')], Action::Stop, "stop generating"),
    b(Context::Generate, &[Char('p')], Action::Pause, "pause / resume"),
    b(Context::Generate, &[Char('t')], Action::ToggleTemplate, "show / hide the prompt template"),
    // Review.
    b(Context::Review, &[Char('a')], Action::Accept, "accept the item"),
    b(Context::Review, &[Char('x')], Action::Reject, "reject the item"),
    b(Context::Review, &[Char('X')], Action::RejectWithReason, "reject, typing a reason"),
    b(Context::Review, &[Char(' '), Char('s')], Action::Skip, "skip (it comes back later)"),
    b(Context::Review, &[Char('e')], Action::EditText, "edit the text in place"),
    b(Context::Review, &[Char('l')], Action::Relabel, "relabel (then 1-9 or enter)"),
    b(Context::Review, &[Char('b')], Action::Bulk, "bulk accept / reject by confidence"),
    // Rejected.
    b(Context::Rejected, &[Code(Up), Char('k')], Action::Up, "previous item"),
    b(Context::Rejected, &[Code(Down), Char('j')], Action::Down, "next item"),
    b(Context::Rejected, &[Code(PageUp)], Action::PageUp, "page up"),
    b(Context::Rejected, &[Code(PageDown)], Action::PageDown, "page down"),
    b(Context::Rejected, &[Code(Home)], Action::First, "first item"),
    b(Context::Rejected, &[Code(End)], Action::Last, "last item"),
    b(Context::Rejected, &[Code(Enter), Char('o')], Action::Open, "open: raw generation, prompt, scores"),
    b(Context::Rejected, &[Char('r')], Action::Rescue, "rescue into the review queue"),
    b(Context::Rejected, &[Char('f')], Action::CycleReasonFilter, "filter by reason (stage)"),
    b(Context::Rejected, &[Char('c')], Action::CycleClassFilter, "filter by class"),
    b(Context::Rejected, &[Code(Esc)], Action::ClearFilters, "clear the filters"),
    // Train.
    b(Context::Train, &[Code(Up), Char('k')], Action::Up, "previous setting"),
    b(Context::Train, &[Code(Down), Char('j')], Action::Down, "next setting"),
    b(Context::Train, &[Code(Left), Char('-')], Action::Decrease, "lower the setting"),
    b(Context::Train, &[Code(Right), Char('+'), Char('=')], Action::Increase, "raise the setting"),
    b(Context::Train, &[Code(Enter)], Action::EditField, "type a value for the setting"),
    b(Context::Train, &[Char('['), Code(PageUp)], Action::PageUp, "previous run on disk"),
    b(Context::Train, &[Char(']'), Code(PageDown)], Action::PageDown, "next run on disk"),
    b(Context::Train, &[Char('g')], Action::Start, "start training"),
    b(Context::Train, &[Char('p')], Action::Pause, "pause / resume training"),
    b(Context::Train, &[Char('s')], Action::Stop, "stop training (the best adapter so far is saved)"),
    b(Context::Train, &[Char('R')], Action::ResumeRun, "resume the selected run (stopped or cut off) from its checkpoint"),
    b(Context::Train, &[Char('d')], Action::Distil, "distil the selected run into a small, fast student (scored beside it on Evaluate)"),
    b(Context::Train, &[Char('r')], Action::Refresh, "read the run folders again"),
    // Evaluate.
    b(Context::Evaluate, &[Code(Up), Char('k')], Action::Up, "previous run"),
    b(Context::Evaluate, &[Code(Down), Char('j')], Action::Down, "next run"),
    b(Context::Evaluate, &[Char('f')], Action::SetField(0), "type the test file's path"),
    b(Context::Evaluate, &[Char('m')], Action::SetField(1), "type the label map (0=negative,1=positive)"),
    b(Context::Evaluate, &[Char('n')], Action::SetField(2), "type a row limit (empty: all rows)"),
    b(Context::Evaluate, &[Char('c')], Action::ToggleCalibrate, "calibration on / off (ICL, zero-shot)"),
    b(Context::Evaluate, &[Char('z')], Action::ToggleZeroShot, "zero-shot in / out of the comparison"),
    b(Context::Evaluate, &[Char('g')], Action::Start, "evaluate ICL, every LoRA run and every student on the test set"),
    b(Context::Evaluate, &[Char('l')], Action::SetField(3), "label a file of texts with the selected classifier"),
    b(Context::Evaluate, &[Char('s')], Action::Stop, "stop the evaluation or labelling"),
    b(Context::Evaluate, &[Char('r')], Action::Refresh, "read the run folders again"),
    // Text input.
    b(Context::TextInput, &[Code(Enter)], Action::Submit, "save"),
    b(Context::TextInput, &[Code(Esc), Ctrl('c')], Action::Cancel, "cancel (nothing is saved)"),
    b(Context::TextInput, &[Code(Left)], Action::CursorLeft, "cursor left"),
    b(Context::TextInput, &[Code(Right)], Action::CursorRight, "cursor right"),
    b(Context::TextInput, &[Code(Home), Ctrl('a')], Action::CursorHome, "start of the text"),
    b(Context::TextInput, &[Code(End), Ctrl('e')], Action::CursorEnd, "end of the text"),
    b(Context::TextInput, &[Code(Backspace)], Action::Backspace, "delete before the cursor"),
    b(Context::TextInput, &[Code(Delete)], Action::DeleteChar, "delete under the cursor"),
    b(Context::TextInput, &[Ctrl('u')], Action::ClearLine, "clear the text"),
    b(Context::TextInput, &[Code(Up)], Action::Up, "previous label (seed editor)"),
    b(Context::TextInput, &[Code(Down), Code(Tab)], Action::Down, "next label (seed editor)"),
    b(Context::TextInput, &[Text], Action::Input(' '), "insert the character"),
    // Picker.
    b(Context::Picker, &[Digit], Action::Pick(0), "choose that label"),
    b(Context::Picker, &[Code(Up), Char('k')], Action::Up, "previous label"),
    b(Context::Picker, &[Code(Down), Char('j')], Action::Down, "next label"),
    b(Context::Picker, &[Code(Enter)], Action::Submit, "choose the highlighted label"),
    b(Context::Picker, &[Code(Esc), Ctrl('c'), Char('q')], Action::Cancel, "cancel"),
    // Bulk.
    b(Context::Bulk, &[Code(Left), Char('-')], Action::Decrease, "lower the threshold by 0.05"),
    b(Context::Bulk, &[Code(Right), Char('+'), Char('=')], Action::Increase, "raise the threshold by 0.05"),
    b(Context::Bulk, &[Char('m'), Code(Tab)], Action::ToggleMode, "accept above / reject below"),
    b(Context::Bulk, &[Code(Enter)], Action::Submit, "apply to the remaining items"),
    b(Context::Bulk, &[Code(Esc), Ctrl('c'), Char('q')], Action::Cancel, "cancel"),
    // Detail.
    b(Context::Detail, &[Code(Up), Char('k')], Action::Up, "scroll up"),
    b(Context::Detail, &[Code(Down), Char('j')], Action::Down, "scroll down"),
    b(Context::Detail, &[Code(PageUp)], Action::PageUp, "page up"),
    b(Context::Detail, &[Code(PageDown), Char(' ')], Action::PageDown, "page down"),
    b(Context::Detail, &[Char('r')], Action::Rescue, "rescue into the review queue"),
    b(Context::Detail, &[Code(Esc), Code(Enter), Char('q'), Ctrl('c')], Action::Cancel, "close"),
    // Confirm.
    b(Context::Confirm, &[Char('y'), Code(Enter)], Action::Yes, "yes"),
    b(Context::Confirm, &[Char('n'), Code(Esc), Ctrl('c')], Action::No, "no"),
    // Help.
    b(Context::Help, &[Code(Up), Char('k')], Action::Up, "scroll up"),
    b(Context::Help, &[Code(Down), Char('j')], Action::Down, "scroll down"),
    b(Context::Help, &[Code(PageUp)], Action::PageUp, "page up"),
    b(Context::Help, &[Code(PageDown), Char(' ')], Action::PageDown, "page down"),
    b(Context::Help, &[Char('?'), Code(Esc), Char('q'), Ctrl('c')], Action::Cancel, "close"),
];

/// The action for `key`, looking in `contexts` in order.
pub fn resolve(contexts: &[Context], key: &KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    for &context in contexts {
        for binding in BINDINGS.iter().filter(|b| b.context == context) {
            for k in binding.keys {
                if let Some(action) = k.resolve(key, &binding.action) {
                    return Some(action);
                }
            }
        }
    }
    None
}

impl Key {
    fn resolve(self, key: &KeyEvent, action: &Action) -> Option<Action> {
        let ctrl_or_alt = key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        let hit = match (self, key.code) {
            (Key::Char(c), KeyCode::Char(k)) => !ctrl_or_alt && k == c,
            (Key::Ctrl(c), KeyCode::Char(k)) => {
                key.modifiers.contains(KeyModifiers::CONTROL) && k.eq_ignore_ascii_case(&c)
            }
            (Key::Code(c), k) => !ctrl_or_alt && k == c,
            (Key::Digit, KeyCode::Char(k @ '1'..='9')) if !ctrl_or_alt => {
                return Some(Action::Pick(k as usize - '1' as usize));
            }
            (Key::Text, KeyCode::Char(k)) if !ctrl_or_alt && !k.is_control() => {
                return Some(Action::Input(k));
            }
            _ => false,
        };
        hit.then(|| action.clone())
    }
}

/// The keys of one binding as the help shows them: `a`, `↑/k`.
pub fn keys_label(binding: &Binding) -> String {
    binding
        .keys
        .iter()
        .map(|k| k.label())
        .collect::<Vec<_>>()
        .join("/")
}

/// The bindings of a context, for the help overlay and the hint line.
pub fn bindings_of(context: Context) -> impl Iterator<Item = &'static Binding> {
    BINDINGS.iter().filter(move |b| b.context == context)
}

/// The key table as Markdown, for the README (a test keeps the README in step with it).
pub fn markdown() -> String {
    let mut out = String::new();
    for context in Context::ALL {
        out.push_str(&format!(
            "\n**{}**\n\n| keys | does |\n|---|---|\n",
            context.title()
        ));
        for b in bindings_of(context) {
            let keys = keys_label(b).replace('|', "\\|");
            out.push_str(&format!("| `{keys}` | {} |\n", b.help));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn screen_keys_shadow_global_ones_and_dialogs_take_everything() {
        let a = key(KeyCode::Char('a'), KeyModifiers::NONE);
        assert!(matches!(
            resolve(&[Context::Review, Context::Global], &a),
            Some(Action::Accept)
        ));
        assert!(matches!(
            resolve(&[Context::Seeds, Context::Global], &a),
            Some(Action::AddSeed)
        ));
        let q = key(KeyCode::Char('q'), KeyModifiers::NONE);
        assert!(matches!(
            resolve(&[Context::TextInput], &q),
            Some(Action::Input('q'))
        ));
        assert!(matches!(
            resolve(&[Context::Review, Context::Global], &q),
            Some(Action::Quit)
        ));
        let three = key(KeyCode::Char('3'), KeyModifiers::NONE);
        assert!(matches!(
            resolve(&[Context::Picker], &three),
            Some(Action::Pick(2))
        ));
        assert!(matches!(
            resolve(&[Context::Review, Context::Global], &three),
            Some(Action::GoTo(Screen::Review))
        ));
    }

    #[test]
    fn shift_and_ctrl_are_told_apart() {
        let big_u = key(KeyCode::Char('U'), KeyModifiers::SHIFT);
        assert!(matches!(
            resolve(&[Context::Global], &big_u),
            Some(Action::Redo)
        ));
        let ctrl_r = key(KeyCode::Char('r'), KeyModifiers::CONTROL);
        assert!(matches!(
            resolve(&[Context::Rejected, Context::Global], &ctrl_r),
            Some(Action::Redo)
        ));
        let ctrl_a = key(KeyCode::Char('a'), KeyModifiers::CONTROL);
        assert!(resolve(&[Context::Review, Context::Global], &ctrl_a).is_none());
        let back = key(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert!(matches!(
            resolve(&[Context::Global], &back),
            Some(Action::PrevScreen)
        ));
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for context in Context::ALL {
            let mut seen: Vec<Key> = Vec::new();
            for b in bindings_of(context) {
                for k in b.keys {
                    assert!(!seen.contains(k), "{context:?}: {k:?} bound twice");
                    seen.push(*k);
                }
            }
        }
    }
}
