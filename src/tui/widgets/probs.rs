//! The classifier's distribution over the labels as bars: `positive ███████░░░ 0.83`.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::text::fit;
use crate::tui::theme::Theme;

/// One line per label, highest first; the intended label marked with `◂`.
pub fn prob_lines(
    probs: &[(String, f64)],
    intended: &str,
    labels: &[String],
    width: usize,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let mut sorted: Vec<&(String, f64)> = probs.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let name_w = sorted
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        .min(16);
    // name, space, bar, space, 0.00, space, marker
    let bar_w = width.saturating_sub(name_w + 9).clamp(1, 30);
    sorted
        .into_iter()
        .map(|(label, p)| {
            let p = p.clamp(0.0, 1.0);
            let full = (p * bar_w as f64).round() as usize;
            let idx = labels.iter().position(|l| l == label);
            let style: Style = theme.label(idx);
            Line::from(vec![
                Span::styled(fit(label, name_w), style),
                Span::raw(" "),
                Span::styled("█".repeat(full), style),
                Span::styled("░".repeat(bar_w - full.min(bar_w)), theme.dim()),
                Span::styled(format!(" {p:.2}"), theme.text()),
                Span::styled(
                    if label == intended { " ◂" } else { "" }.to_string(),
                    theme.accent(),
                ),
            ])
        })
        .collect()
}
