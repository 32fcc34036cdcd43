//! Colour themes: `themes/*.toml` compiled in (dark, light, high-contrast), plus the user's own in
//! `<config dir>/themes/*.toml`. A user theme may name a bundled one in `extends` and set only the
//! colours it changes. Colours are names (`red`, `lightblue`, `reset`), `#rrggbb` or an index
//! (`236`); on a terminal without true colour (`COLORTERM` not `truecolor`/`24bit`) every RGB
//! colour is mapped to the nearest of the 16 ANSI colours.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The bundled themes, in the order `T` cycles through them.
pub const BUNDLED: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

pub const DEFAULT_THEME: &str = "dark";

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub bg: Color,
    pub fg: Color,
    pub dim: Color,
    pub accent: Color,
    pub border: Color,
    pub border_focus: Color,
    pub selection_bg: Color,
    pub selection_fg: Color,
    pub tab_active: Color,
    pub ok: Color,
    pub warn: Color,
    pub error: Color,
    pub info: Color,
    pub bar_bg: Color,
    pub bar_fg: Color,
    /// One colour per label, cycled when there are more labels.
    pub labels: Vec<Color>,
    /// The train and validation curves.
    pub train_line: Color,
    pub val_line: Color,
}

/// A theme file: every colour optional, so a user theme can patch a bundled one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    extends: Option<String>,
    #[serde(default)]
    colors: BTreeMap<String, ColorValue>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ColorValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("no theme named `{name}` (available: {})", .available.join(", "))]
    Unknown {
        name: String,
        available: Vec<String>,
    },
    #[error("theme {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Theme {
    pub fn base(&self) -> Style {
        Style::default().fg(self.fg).bg(self.bg)
    }
    pub fn text(&self) -> Style {
        Style::default().fg(self.fg)
    }
    pub fn dim(&self) -> Style {
        Style::default().fg(self.dim)
    }
    pub fn accent(&self) -> Style {
        Style::default().fg(self.accent)
    }
    pub fn bold(&self) -> Style {
        Style::default().fg(self.fg).add_modifier(Modifier::BOLD)
    }
    pub fn title(&self) -> Style {
        Style::default()
            .fg(self.accent)
            .add_modifier(Modifier::BOLD)
    }
    pub fn border(&self, focused: bool) -> Style {
        Style::default().fg(if focused {
            self.border_focus
        } else {
            self.border
        })
    }
    pub fn selected(&self) -> Style {
        Style::default()
            .fg(self.selection_fg)
            .bg(self.selection_bg)
            .add_modifier(Modifier::BOLD)
    }
    pub fn ok(&self) -> Style {
        Style::default().fg(self.ok)
    }
    pub fn warn(&self) -> Style {
        Style::default().fg(self.warn)
    }
    pub fn error(&self) -> Style {
        Style::default().fg(self.error).add_modifier(Modifier::BOLD)
    }
    pub fn info(&self) -> Style {
        Style::default().fg(self.info)
    }
    pub fn bar(&self) -> Style {
        Style::default().fg(self.bar_fg).bg(self.bar_bg)
    }
    /// The colour of the label at `index` in the task.
    pub fn label(&self, index: Option<usize>) -> Style {
        match (index, self.labels.len()) {
            (Some(i), n) if n > 0 => Style::default()
                .fg(self.labels[i % n])
                .add_modifier(Modifier::BOLD),
            _ => self.bold(),
        }
    }

    /// The bundled dark theme (also what tests render with).
    pub fn dark() -> Theme {
        Theme::bundled(DEFAULT_THEME, true).expect("the bundled dark theme is valid")
    }

    /// A bundled theme by name.
    pub fn bundled(name: &str, truecolor: bool) -> Result<Theme, ThemeError> {
        load(name, None, truecolor)
    }
}

/// Whether the terminal says it shows 24-bit colour.
pub fn truecolor_from_env() -> bool {
    std::env::var("COLORTERM")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "truecolor" | "24bit"))
        .unwrap_or(false)
}

/// Where user themes live: `$SEEDFORGE_CONFIG_DIR/themes`, else the platform config folder.
pub fn user_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SEEDFORGE_CONFIG_DIR") {
        return Some(PathBuf::from(dir).join("themes"));
    }
    directories::ProjectDirs::from("", "", "seedforge").map(|d| d.config_dir().join("themes"))
}

/// Names of every theme: bundled first, then the user's.
pub fn available(user_dir: Option<&Path>) -> Vec<String> {
    let mut names: Vec<String> = BUNDLED.iter().map(|(n, _)| n.to_string()).collect();
    if let Some(dir) = user_dir
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let mut user: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .filter(|n| !names.contains(n))
            .collect();
        user.sort();
        names.extend(user);
    }
    names
}

/// Loads theme `name`: the user's `<user_dir>/<name>.toml` if there is one (which may extend a
/// bundled theme), else the bundled theme of that name.
pub fn load(name: &str, user_dir: Option<&Path>, truecolor: bool) -> Result<Theme, ThemeError> {
    // Layers from the theme asked for down to its bundled base.
    let mut layers: Vec<ThemeFile> = Vec::new();
    let mut used_user: Vec<String> = Vec::new();
    let mut current = name.to_string();
    loop {
        let bundled = BUNDLED.iter().find(|(b, _)| *b == current);
        let user_file = user_dir
            .map(|d| d.join(format!("{current}.toml")))
            .filter(|p| p.is_file() && !used_user.contains(&current));
        if let Some(path) = user_file {
            let file = read_file(&path)?;
            used_user.push(current.clone());
            // A user file named like a bundled theme, without `extends`, patches that theme.
            let next = file
                .extends
                .clone()
                .or_else(|| bundled.map(|(b, _)| b.to_string()));
            layers.push(file);
            match next {
                Some(n) if layers.len() <= 8 => current = n,
                Some(_) => {
                    return Err(ThemeError::Invalid {
                        path: path.display().to_string(),
                        message: "`extends` goes round in a circle".into(),
                    });
                }
                None => break,
            }
        } else if let Some((b, text)) = bundled {
            layers.push(toml::from_str(text).map_err(|e| ThemeError::Invalid {
                path: format!("themes/{b}.toml"),
                message: e.to_string(),
            })?);
            break;
        } else if used_user.contains(&current) {
            return Err(ThemeError::Invalid {
                path: current,
                message: "`extends` goes round in a circle".into(),
            });
        } else {
            return Err(ThemeError::Unknown {
                name: current,
                available: available(user_dir),
            });
        }
    }
    // Apply from the base up.
    let mut colors: BTreeMap<String, ColorValue> = BTreeMap::new();
    for file in layers.into_iter().rev() {
        colors.extend(file.colors);
    }
    build(name, &colors, truecolor)
}

fn read_file(path: &Path) -> Result<ThemeFile, ThemeError> {
    let invalid = |message: String| ThemeError::Invalid {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    toml::from_str(&text).map_err(|e| invalid(e.to_string()))
}

fn build(
    name: &str,
    colors: &BTreeMap<String, ColorValue>,
    truecolor: bool,
) -> Result<Theme, ThemeError> {
    let invalid = |message: String| ThemeError::Invalid {
        path: name.to_string(),
        message,
    };
    for key in colors.keys() {
        if !KEYS.contains(&key.as_str()) {
            return Err(invalid(format!(
                "unknown colour `{key}` (known: {})",
                KEYS.join(", ")
            )));
        }
    }
    let one = |key: &str| -> Result<Color, ThemeError> {
        match colors.get(key) {
            Some(ColorValue::One(s)) => parse_color(s, truecolor)
                .ok_or_else(|| invalid(format!("`{key}`: cannot read colour `{s}`"))),
            Some(ColorValue::Many(_)) => Err(invalid(format!("`{key}` takes one colour"))),
            None => Err(invalid(format!("`{key}` is missing"))),
        }
    };
    let labels = match colors.get("labels") {
        Some(ColorValue::Many(list)) => list
            .iter()
            .map(|s| {
                parse_color(s, truecolor)
                    .ok_or_else(|| invalid(format!("`labels`: cannot read colour `{s}`")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(ColorValue::One(s)) => vec![
            parse_color(s, truecolor)
                .ok_or_else(|| invalid(format!("`labels`: cannot read colour `{s}`")))?,
        ],
        None => Vec::new(),
    };
    Ok(Theme {
        name: name.to_string(),
        bg: one("bg")?,
        fg: one("fg")?,
        dim: one("dim")?,
        accent: one("accent")?,
        border: one("border")?,
        border_focus: one("border_focus")?,
        selection_bg: one("selection_bg")?,
        selection_fg: one("selection_fg")?,
        tab_active: one("tab_active")?,
        ok: one("ok")?,
        warn: one("warn")?,
        error: one("error")?,
        info: one("info")?,
        bar_bg: one("bar_bg")?,
        bar_fg: one("bar_fg")?,
        labels,
        train_line: one("train_line")?,
        val_line: one("val_line")?,
    })
}

const KEYS: [&str; 18] = [
    "bg",
    "fg",
    "dim",
    "accent",
    "border",
    "border_focus",
    "selection_bg",
    "selection_fg",
    "tab_active",
    "ok",
    "warn",
    "error",
    "info",
    "bar_bg",
    "bar_fg",
    "labels",
    "train_line",
    "val_line",
];

/// Reads a colour; RGB becomes the nearest ANSI colour when the terminal lacks true colour.
pub fn parse_color(s: &str, truecolor: bool) -> Option<Color> {
    let c = Color::from_str(s.trim()).ok()?;
    Some(if truecolor { c } else { degrade(c) })
}

/// The 16 ANSI colours with the RGB values xterm gives them.
const ANSI: [(Color, (u8, u8, u8)); 16] = [
    (Color::Black, (0, 0, 0)),
    (Color::Red, (205, 0, 0)),
    (Color::Green, (0, 205, 0)),
    (Color::Yellow, (205, 205, 0)),
    (Color::Blue, (0, 0, 238)),
    (Color::Magenta, (205, 0, 205)),
    (Color::Cyan, (0, 205, 205)),
    (Color::Gray, (229, 229, 229)),
    (Color::DarkGray, (127, 127, 127)),
    (Color::LightRed, (255, 0, 0)),
    (Color::LightGreen, (0, 255, 0)),
    (Color::LightYellow, (255, 255, 0)),
    (Color::LightBlue, (92, 92, 255)),
    (Color::LightMagenta, (255, 0, 255)),
    (Color::LightCyan, (0, 255, 255)),
    (Color::White, (255, 255, 255)),
];

/// The nearest of the 16 ANSI colours to an RGB (or 256-index) colour; others unchanged.
pub fn degrade(c: Color) -> Color {
    let (r, g, b) = match c {
        Color::Rgb(r, g, b) => (r, g, b),
        Color::Indexed(i) if i >= 16 => indexed_rgb(i),
        Color::Indexed(i) => return ANSI[i as usize].0,
        other => return other,
    };
    let dist = |(x, y, z): (u8, u8, u8)| {
        // Weighted for the eye's sensitivity ("redmean" would do too; this is close enough).
        let dr = r as i32 - x as i32;
        let dg = g as i32 - y as i32;
        let db = b as i32 - z as i32;
        3 * dr * dr + 4 * dg * dg + 2 * db * db
    };
    ANSI.iter()
        .min_by_key(|(_, rgb)| dist(*rgb))
        .map(|(c, _)| *c)
        .unwrap_or(Color::Reset)
}

fn indexed_rgb(i: u8) -> (u8, u8, u8) {
    if i >= 232 {
        let v = 8 + (i - 232) * 10;
        return (v, v, v);
    }
    let i = i - 16;
    let level = |n: u8| if n == 0 { 0 } else { 55 + n * 40 };
    (level(i / 36), level((i / 6) % 6), level(i % 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_themes_load_in_both_colour_modes() {
        for (name, _) in BUNDLED {
            let t = load(name, None, true).unwrap();
            assert_eq!(t.name, name);
            assert!(t.labels.len() >= 4, "{name}");
            let t16 = load(name, None, false).unwrap();
            for c in [
                t16.fg,
                t16.bg,
                t16.accent,
                t16.selection_bg,
                t16.ok,
                t16.error,
            ] {
                assert!(!matches!(c, Color::Rgb(..)), "{name}: {c:?} not degraded");
            }
        }
    }

    #[test]
    fn degrading_picks_the_nearest_ansi_colour() {
        assert_eq!(degrade(Color::Rgb(250, 10, 10)), Color::LightRed);
        assert_eq!(degrade(Color::Rgb(10, 10, 10)), Color::Black);
        assert_eq!(degrade(Color::Rgb(120, 120, 130)), Color::DarkGray);
        assert_eq!(degrade(Color::Indexed(196)), Color::LightRed);
        assert_eq!(degrade(Color::Reset), Color::Reset);
    }

    #[test]
    fn user_theme_extends_a_bundled_one_and_errors_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.toml"),
            "extends = \"light\"\n[colors]\naccent = \"#ff0000\"\n",
        )
        .unwrap();
        let t = load("mine", Some(dir.path()), true).unwrap();
        let light = load("light", None, true).unwrap();
        assert_eq!(t.accent, Color::Rgb(255, 0, 0));
        assert_eq!(t.bg, light.bg);
        assert!(available(Some(dir.path())).contains(&"mine".to_string()));

        // A user file with a bundled name patches that theme.
        std::fs::write(
            dir.path().join("dark.toml"),
            "[colors]\nerror = \"magenta\"\n",
        )
        .unwrap();
        let d = load("dark", Some(dir.path()), true).unwrap();
        assert_eq!(d.error, Color::Magenta);
        assert_eq!(d.fg, Theme::dark().fg);

        std::fs::write(
            dir.path().join("bad.toml"),
            "extends = \"dark\"\n[colors]\nfg = \"nocolour\"\n",
        )
        .unwrap();
        let err = load("bad", Some(dir.path()), true).unwrap_err().to_string();
        assert!(err.contains("nocolour"), "{err}");
        std::fs::write(dir.path().join("loop.toml"), "extends = \"loop\"\n").unwrap();
        assert!(load("loop", Some(dir.path()), true).is_err());
        let err = load("nope", Some(dir.path()), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("dark, light, high-contrast"), "{err}");
    }
}
