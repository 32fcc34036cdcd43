//! A settings form: one row per setting, `name  value`, the selected row highlighted, with the
//! selected setting's hint underneath when there is room.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{StatefulWidget, Widget};

use super::text::{fit, truncate, width};

/// One setting as shown.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub value: String,
    pub hint: &'static str,
    /// Greyed out (cannot be changed now).
    pub disabled: bool,
}

/// Which row is selected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormState {
    pub selected: usize,
}

impl FormState {
    pub fn up(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }
    pub fn down(&mut self, len: usize) {
        self.selected = (self.selected + 1).min(len.saturating_sub(1));
    }
}

pub struct Form<'a> {
    pub fields: &'a [Field],
    pub style: Style,
    pub selected_style: Style,
    pub dim_style: Style,
    /// Whether the form has the keys (the selection is drawn only then).
    pub focused: bool,
}

impl StatefulWidget for Form<'_> {
    type State = FormState;

    fn render(self, area: Rect, buf: &mut Buffer, state: &mut FormState) {
        if area.height == 0 {
            return;
        }
        let w = area.width as usize;
        let name_w = self
            .fields
            .iter()
            .map(|f| width(f.name))
            .max()
            .unwrap_or(0)
            .min(w / 2);
        let rows = area.height as usize;
        let show_hint = rows > self.fields.len() + 1;
        let list_rows = if show_hint { rows - 2 } else { rows };
        // One row of what follows stays in sight below the selection (when there is one), so
        // the bottom edge can say that more follows.
        let below = usize::from(state.selected + 1 < self.fields.len() && list_rows > 2);
        let first = (state.selected + 1 + below).saturating_sub(list_rows);
        let last = (first + list_rows).min(self.fields.len()).saturating_sub(1);
        for (i, f) in self.fields.iter().enumerate().skip(first).take(list_rows) {
            let y = area.y + (i - first) as u16;
            let selected = self.focused && i == state.selected;
            let style = if selected {
                self.selected_style
            } else if f.disabled {
                self.dim_style
            } else {
                self.style
            };
            let value_w = w.saturating_sub(name_w + 3);
            // Rows scrolled out of sight are announced at the edge they are beyond.
            let marker = if selected {
                "›"
            } else if i == first && first > 0 {
                "↑"
            } else if i == last && last + 1 < self.fields.len() {
                "↓"
            } else {
                " "
            };
            let line = Line::from(vec![
                Span::styled(marker, style),
                Span::styled(fit(f.name, name_w), style),
                Span::styled(" ", style),
                Span::styled(format!("{:>value_w$}", truncate(&f.value, value_w)), style),
                Span::styled(" ", style),
            ]);
            line.render(Rect::new(area.x, y, area.width, 1), buf);
        }
        if show_hint && let Some(f) = self.fields.get(state.selected) {
            let y = area.y + area.height - 1;
            Line::styled(truncate(f.hint, w), self.dim_style)
                .render(Rect::new(area.x, y, area.width, 1), buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(selected: usize, height: u16) -> Vec<String> {
        let fields: Vec<Field> = (0..5)
            .map(|_| Field {
                name: "n",
                value: "v".into(),
                hint: "h",
                disabled: false,
            })
            .collect();
        let area = Rect::new(0, 0, 12, height);
        let mut buf = Buffer::empty(area);
        let form = Form {
            fields: &fields,
            style: Style::default(),
            selected_style: Style::default(),
            dim_style: Style::default(),
            focused: true,
        };
        form.render(area, &mut buf, &mut FormState { selected });
        (0..height)
            .map(|y| buf[(0, y)].symbol().to_string())
            .collect()
    }

    #[test]
    fn rows_out_of_sight_are_announced_at_their_edge() {
        // 5 rows in 3 lines: more below at the top, more above at the bottom, both between.
        assert_eq!(markers(0, 3), ["›", " ", "↓"]);
        assert_eq!(markers(4, 3), ["↑", " ", "›"]);
        // The row after the selection stays in sight, so its edge can say so.
        assert_eq!(markers(2, 3), ["↑", "›", "↓"]);
        assert_eq!(markers(3, 3), ["↑", "›", " "]);
        assert_eq!(markers(2, 2), ["↑", "›"]);
        // Everything in sight (and the hint below): no arrows.
        assert_eq!(markers(1, 7), [" ", "›", " ", " ", " ", " ", "h"]);
    }
}
