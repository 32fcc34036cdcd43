//! Everything that can change the workbench: keys become actions through the keymap
//! ([`super::keymap`]), engine events arrive wrapped in [`Action::Engine`], and
//! [`super::app::App::update`] is the only place state changes.

use super::screens::Screen;
use crate::engine::Event;

#[derive(Debug, Clone)]
pub enum Action {
    // Anywhere.
    NextScreen,
    PrevScreen,
    GoTo(Screen),
    ToggleHelp,
    /// `q`: quit, asking first when a job runs.
    Quit,
    /// `ctrl-c`: stop the running job, or quit when none runs.
    Interrupt,
    Undo,
    Redo,
    CycleTheme,

    // Lists and forms.
    Up,
    Down,
    PageUp,
    PageDown,
    First,
    Last,
    /// Lower the selected setting (or move left).
    Decrease,
    /// Raise the selected setting (or move right).
    Increase,
    /// Type a new value for the selected setting.
    EditField,

    // Review.
    Accept,
    Reject,
    RejectWithReason,
    Skip,
    EditText,
    Relabel,
    Bulk,

    // Rejected.
    Open,
    Rescue,
    CycleReasonFilter,
    CycleClassFilter,
    ClearFilters,

    // Seeds.
    AddSeed,
    EditSeed,
    DeleteSeed,

    // Jobs (Generate, Train, Evaluate).
    Start,
    /// Label the annotate file's texts into review (Generate).
    Annotate,
    Stop,
    Pause,
    ToggleTemplate,
    /// Read the run folders again (Train, Evaluate).
    Refresh,
    /// Go on with the selected stopped or interrupted run from its checkpoint (Train).
    ResumeRun,
    /// Distil the selected run into a small, fast student (Train).
    Distil,

    // Evaluate.
    /// Type a value for the n-th setting of the screen (the test file, its label map…).
    SetField(usize),
    ToggleCalibrate,
    ToggleZeroShot,

    // Text input (the in-place editor and the value prompts).
    Input(char),
    Backspace,
    DeleteChar,
    CursorLeft,
    CursorRight,
    CursorHome,
    CursorEnd,
    ClearLine,
    /// Enter: confirm the open dialog, editor or picker.
    Submit,
    /// Esc: close the open dialog, editor or picker without doing anything.
    Cancel,
    /// A number key in a picker: choose the n-th entry (0-based).
    Pick(usize),
    /// Toggle between the two modes of a dialog (bulk: accept above / reject below).
    ToggleMode,
    Yes,
    No,

    /// The terminal's size, at the start and whenever it changes.
    Resize {
        width: u16,
        height: u16,
    },
    /// Something the engine reported.
    Engine(Box<Event>),
}
