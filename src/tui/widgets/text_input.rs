//! A small text editor: insert, delete, cursor left/right, home/end, clear. The state is kept
//! apart from the widget (a `StatefulWidget`), so the app owns what is typed and the widget only
//! draws it — wrapped over as many rows as its area has, the cursor's row kept in view.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::widgets::StatefulWidget;
use unicode_width::UnicodeWidthChar;

use super::text::wrap_ranges;

/// What is being typed and where the cursor is (a char index, 0..=len).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EditorState {
    chars: Vec<char>,
    cursor: usize,
}

impl EditorState {
    /// An editor holding `text`, the cursor at its end.
    pub fn new(text: &str) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let cursor = chars.len();
        EditorState { chars, cursor }
    }

    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }
    pub fn cursor(&self) -> usize {
        self.cursor
    }
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    pub fn insert(&mut self, c: char) {
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
    }
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
    }
    pub fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
    }
    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }
    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars.len());
    }
    pub fn home(&mut self) {
        self.cursor = 0;
    }
    pub fn end(&mut self) {
        self.cursor = self.chars.len();
    }
    pub fn clear(&mut self) {
        self.chars.clear();
        self.cursor = 0;
    }

    /// Inserts pasted text at the cursor. Line breaks (`\r\n`, `\r`, `\n`) become `\n` where the
    /// field holds several lines and a space where it holds one; tabs become a space and other
    /// control characters are dropped, since the terminal would draw them as garbage.
    pub fn paste(&mut self, text: &str, multiline: bool) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let c = match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    '\n'
                }
                '\t' => ' ',
                c => c,
            };
            match c {
                '\n' if multiline => self.insert('\n'),
                '\n' => self.insert(' '),
                c if c.is_control() => {}
                c => self.insert(c),
            }
        }
    }
}

/// Draws an [`EditorState`]: the text wrapped to the area, the cursor as a reversed cell.
pub struct TextInput {
    pub style: Style,
    pub cursor_style: Style,
    /// Shown dimmed when the text is empty.
    pub placeholder: String,
    pub placeholder_style: Style,
}

impl StatefulWidget for TextInput {
    type State = EditorState;

    fn render(self, area: Rect, buf: &mut Buffer, state: &mut EditorState) {
        if area.width == 0 || area.height == 0 {
            return;
        }
        buf.set_style(area, self.style);
        if state.chars.is_empty() {
            buf.set_stringn(
                area.x + 1,
                area.y,
                &self.placeholder,
                area.width.saturating_sub(1) as usize,
                self.placeholder_style,
            );
            buf[(area.x, area.y)].set_symbol(" ").set_style(
                self.cursor_style
                    .add_modifier(Modifier::REVERSED)
                    .patch(Style::default()),
            );
            return;
        }
        // One cell is kept free at the end of a row for the cursor after the last character.
        let w = area.width.saturating_sub(1).max(1) as usize;
        let rows = wrap_ranges(&state.chars, w);
        let cursor_row = rows
            .iter()
            .rposition(|&(a, _)| a <= state.cursor)
            .unwrap_or(0);
        let height = area.height as usize;
        let first = cursor_row.saturating_sub(height - 1);
        for (i, &(a, b)) in rows.iter().enumerate().skip(first).take(height) {
            let y = area.y + (i - first) as u16;
            let mut x = area.x;
            for (ci, &c) in state.chars[a..b].iter().enumerate() {
                let idx = a + ci;
                let style = if idx == state.cursor {
                    self.cursor_style.add_modifier(Modifier::REVERSED)
                } else {
                    self.style
                };
                let shown = if c == '\n' { '⏎' } else { c };
                let cw = shown.width().unwrap_or(0) as u16;
                if cw == 0 {
                    continue;
                }
                if x + cw > area.x + area.width {
                    break;
                }
                buf[(x, y)].set_char(shown).set_style(style);
                x += cw;
            }
            if i == cursor_row && state.cursor >= b && x < area.x + area.width {
                buf[(x, y)]
                    .set_char(' ')
                    .set_style(self.cursor_style.add_modifier(Modifier::REVERSED));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editing_moves_the_cursor_like_a_line_editor() {
        let mut e = EditorState::new("helo");
        e.left();
        e.insert('l');
        assert_eq!((e.text().as_str(), e.cursor()), ("hello", 4));
        e.home();
        e.delete();
        assert_eq!(e.text(), "ello");
        e.end();
        e.backspace();
        e.backspace();
        assert_eq!(e.text(), "el");
        e.right();
        assert_eq!(e.cursor(), 2);
        e.clear();
        assert!(e.is_empty());
        e.backspace();
        e.left();
        assert_eq!(e.cursor(), 0);
    }

    #[test]
    fn paste_keeps_line_breaks_only_where_the_field_has_lines() {
        let mut e = EditorState::new("ab");
        e.left();
        e.paste("one\r\ntwo\rthree\tfour\u{7}", true);
        assert_eq!(e.text(), "aone\ntwo\nthree fourb");
        assert_eq!(e.cursor(), "aone\ntwo\nthree four".chars().count());
        let mut single = EditorState::default();
        single.paste("a better line\nax\r\n", false);
        assert_eq!(single.text(), "a better line ax ");
    }

    #[test]
    fn renders_wrapped_with_the_cursor_row_in_view() {
        let mut state = EditorState::new("one two three four five six");
        let mut buf = Buffer::empty(Rect::new(0, 0, 10, 2));
        TextInput {
            style: Style::default(),
            cursor_style: Style::default(),
            placeholder: String::new(),
            placeholder_style: Style::default(),
        }
        .render(buf.area, &mut buf, &mut state);
        let rows: Vec<String> = (0..2)
            .map(|y| (0..10).map(|x| buf[(x, y)].symbol()).collect())
            .collect();
        // The cursor is at the end, so the last rows show.
        assert_eq!(rows[1].trim_end(), "five six");
    }
}
