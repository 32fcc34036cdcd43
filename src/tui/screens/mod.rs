//! One module a screen: its state, its dialogs, how it answers actions, and its pure `draw`.
//! Every screen is a [`Component`](super::component::Component), reached only through
//! [`App::update`](super::app::App::update)'s routing. Review keeps its actions in
//! `review_actions`, Generate its form's rows in `generate_form`.

pub mod evaluate;
pub mod generate;
pub mod generate_form;
pub mod rejected;
pub mod review;
pub mod review_actions;
pub mod runs;
pub mod seeds;
pub mod train;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Screen {
    Seeds,
    Generate,
    Review,
    Rejected,
    Train,
    Evaluate,
}

impl Screen {
    pub const ALL: [Screen; 6] = [
        Screen::Seeds,
        Screen::Generate,
        Screen::Review,
        Screen::Rejected,
        Screen::Train,
        Screen::Evaluate,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Seeds => "Seeds",
            Screen::Generate => "Generate",
            Screen::Review => "Review",
            Screen::Rejected => "Rejected",
            Screen::Train => "Train",
            Screen::Evaluate => "Evaluate",
        }
    }

    pub fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    pub fn next(self) -> Screen {
        Screen::ALL[(self.index() + 1) % Screen::ALL.len()]
    }

    pub fn prev(self) -> Screen {
        Screen::ALL[(self.index() + Screen::ALL.len() - 1) % Screen::ALL.len()]
    }
}
