//! Reusable pieces of the screens. Widgets with state keep it in a separate struct the app owns
//! (`StatefulWidget`); the rest are plain functions of what they show.

pub mod field_editor;
pub mod form;
pub mod popup;
pub mod probs;
pub mod text;
pub mod text_input;
