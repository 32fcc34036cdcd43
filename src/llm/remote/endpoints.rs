//! The servers a user configured in `<config dir>/config.toml` (`$SEEDFORGE_CONFIG_DIR`, else
//! the platform's config folder), offered by name on the command line and in the Generate
//! screen's writer row:
//!
//! ```toml
//! [[endpoint]]
//! name = "llama"
//! url = "http://127.0.0.1:8080/v1"
//! model = "smollm2"          # optional when the server serves one model
//! key_env = "LLAMA_API_KEY"  # optional: the variable holding the key, never the key
//! concurrency = 16           # optional
//! ```

use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;

use super::settings::{Endpoint, RemoteSettings};

/// `config.toml`'s path.
pub fn config_file() -> Option<PathBuf> {
    let dir = match std::env::var_os("SEEDFORGE_CONFIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => directories::ProjectDirs::from("", "", "seedforge")?
            .config_dir()
            .to_path_buf(),
    };
    Some(dir.join("config.toml"))
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    endpoint: Vec<Configured>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Configured {
    name: String,
    url: String,
    model: Option<String>,
    key_env: Option<String>,
    concurrency: Option<usize>,
}

/// Every configured endpoint, in the file's order (none without a file).
pub fn configured() -> anyhow::Result<Vec<RemoteSettings>> {
    let Some(path) = config_file().filter(|p| p.is_file()) else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("cannot read the endpoints in {}", path.display()))
}

fn parse(text: &str) -> anyhow::Result<Vec<RemoteSettings>> {
    let config: Config = toml::from_str(text)?;
    config
        .endpoint
        .into_iter()
        .map(|c| {
            let mut s = RemoteSettings::new(Endpoint {
                url: c.url,
                model: c.model,
                key_env: c.key_env,
                name: Some(c.name),
            });
            if let Some(n) = c.concurrency {
                s.concurrency = n;
            }
            s.validate().map_err(anyhow::Error::msg)?;
            Ok(s)
        })
        .collect()
}

/// The configured endpoint called `name`.
pub fn named(name: &str) -> anyhow::Result<RemoteSettings> {
    let all = configured()?;
    let names: Vec<String> = all.iter().filter_map(|s| s.endpoint.name.clone()).collect();
    all.into_iter()
        .find(|s| s.endpoint.name.as_deref() == Some(name))
        .with_context(|| {
            format!(
                "`{name}` is neither a URL (http://…) nor an endpoint of {} ({})",
                config_file().map_or("config.toml".into(), |p| p.display().to_string()),
                if names.is_empty() {
                    "it names none".to_string()
                } else {
                    format!("it names {}", names.join(", "))
                }
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_endpoints_and_refuses_typos() {
        let s = parse(
            "theme = \"light\"\n[[endpoint]]\nname = \"local\"\nurl = \"http://127.0.0.1:8080/v1\"\n\
             key_env = \"K\"\nconcurrency = 4\n[[endpoint]]\nname = \"o\"\nurl = \"http://h:11434/v1\"\nmodel = \"m\"\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].endpoint.key_env.as_deref(), Some("K"));
        assert_eq!(s[0].concurrency, 4);
        assert_eq!(s[1].endpoint.model.as_deref(), Some("m"));
        assert!(
            parse("[[endpoint]]\nname = \"x\"\nurl = \"http://h/v1\"\nkey = \"sk-1\"\n").is_err()
        );
        assert!(parse("[[endpoint]]\nname = \"x\"\nurl = \"h/v1\"\n").is_err());
        assert!(parse("theme = \"dark\"\n").unwrap().is_empty());
    }
}
