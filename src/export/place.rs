//! Where an export goes, and putting it there whole: everything is written under a temporary
//! name beside the destination and renamed into place at the end, so a failed or interrupted
//! export leaves nothing under the destination's name (and removes its temporary files).

use std::path::{Path, PathBuf};

use anyhow::Context;
use tempfile::{NamedTempFile, TempDir};

use crate::data::atomic::sync_dir;

/// What the destination must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Folder,
}

/// Checks `out` before any work: it must not exist unless `force` (and then be of the same
/// kind), and its folder must exist or be creatable. Errors name the path and the reason.
pub fn check(out: &Path, kind: Kind, force: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        out.file_name().is_some(),
        "{}: not a file or folder name to write to",
        out.display()
    );
    if let Ok(meta) = std::fs::symlink_metadata(out) {
        anyhow::ensure!(
            force,
            "{}: already exists (--force replaces it)",
            out.display()
        );
        let is_dir = meta.is_dir();
        anyhow::ensure!(
            is_dir == (kind == Kind::Folder),
            "{}: already exists as a {}, and this export is a {}; name another path",
            out.display(),
            if is_dir { "folder" } else { "file" },
            if kind == Kind::Folder {
                "folder"
            } else {
                "file"
            }
        );
    }
    let parent = parent_of(out);
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("{}: cannot create its folder", out.display()))?;
    anyhow::ensure!(
        parent.is_dir(),
        "{}: {} is not a folder",
        out.display(),
        parent.display()
    );
    Ok(())
}

fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_prefix(out: &Path) -> String {
    format!(
        ".{}.seedforge-",
        out.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// A temporary file beside `out` (removed if dropped before [`commit_file`]), readable by all
/// as a file written the ordinary way would be (a bare temporary file is the owner's alone).
pub fn temp_file(out: &Path) -> anyhow::Result<NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    builder
        .prefix(&temp_prefix(out))
        .tempfile_in(parent_of(out))
        .with_context(|| format!("{}: cannot write in its folder", out.display()))
}

/// A temporary folder beside `out` (removed with its contents if dropped before
/// [`commit_folder`]), readable by all once in place.
pub fn temp_folder(out: &Path) -> anyhow::Result<TempDir> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755));
    builder
        .prefix(&temp_prefix(out))
        .tempdir_in(parent_of(out))
        .with_context(|| format!("{}: cannot write in its folder", out.display()))
}

/// Flushes `tmp` to disk and renames it to `out` (replacing a file there).
pub fn commit_file(tmp: NamedTempFile, out: &Path) -> anyhow::Result<()> {
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("{}: flushing", out.display()))?;
    tmp.persist(out).map_err(|e| e.error).with_context(|| {
        format!(
            "{}: cannot move the finished file into place",
            out.display()
        )
    })?;
    sync_dir(&parent_of(out)).with_context(|| format!("{}: flushing its folder", out.display()))
}

/// Renames the finished folder `tmp` to `out`. A folder already there (`--force`) is moved
/// aside first and removed once the new one is in place.
pub fn commit_folder(tmp: TempDir, out: &Path) -> anyhow::Result<()> {
    let parent = parent_of(out);
    let staged = tmp.keep();
    let result = (|| {
        let aside = if out.exists() {
            let aside = parent.join(format!("{}old-{}", temp_prefix(out), std::process::id()));
            std::fs::rename(out, &aside)
                .with_context(|| format!("{}: cannot move the old folder aside", out.display()))?;
            Some(aside)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&staged, out) {
            if let Some(a) = &aside {
                let _ = std::fs::rename(a, out);
            }
            return Err(e).with_context(|| {
                format!(
                    "{}: cannot move the finished folder into place",
                    out.display()
                )
            });
        }
        if let Some(a) = aside {
            std::fs::remove_dir_all(&a)
                .with_context(|| format!("removing the replaced folder {}", a.display()))?;
        }
        sync_dir(&parent).with_context(|| format!("{}: flushing its folder", out.display()))
    })();
    if result.is_err() && staged.exists() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_destination_needs_force_and_the_same_kind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.gguf");
        std::fs::write(&file, "x").unwrap();
        let e = check(&file, Kind::File, false).unwrap_err().to_string();
        assert!(e.contains("m.gguf") && e.contains("--force"), "{e}");
        check(&file, Kind::File, true).unwrap();
        let e = check(&file, Kind::Folder, true).unwrap_err().to_string();
        assert!(e.contains("as a file"), "{e}");
        // A path under a file cannot be written.
        let e = check(&file.join("x.gguf"), Kind::File, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.gguf"), "{e}");
        check(&dir.path().join("new/deeper/m.gguf"), Kind::File, false).unwrap();
    }

    #[test]
    fn a_dropped_temporary_leaves_nothing_and_commits_replace_whole() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hf");
        {
            let t = temp_folder(&out).unwrap();
            std::fs::write(t.path().join("a"), "1").unwrap();
            let f = temp_file(&dir.path().join("m.gguf")).unwrap();
            std::fs::write(f.path(), "half").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        for content in ["first", "second"] {
            let t = temp_folder(&out).unwrap();
            std::fs::write(t.path().join("a"), content).unwrap();
            commit_folder(t, &out).unwrap();
            assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), content);
        }
        let file = dir.path().join("m.gguf");
        for content in ["first", "second"] {
            let t = temp_file(&file).unwrap();
            std::fs::write(t.path(), content).unwrap();
            commit_file(t, &file).unwrap();
            assert_eq!(std::fs::read_to_string(&file).unwrap(), content);
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "only the two exports remain: {names:?}");
    }
}
