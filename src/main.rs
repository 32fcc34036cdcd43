use clap::Parser;

fn main() -> std::process::ExitCode {
    seedforge::util::allocator::keep_freed_buffers();
    quiet_headless_vulkan();
    let cli = seedforge::cli::Cli::parse();
    match seedforge::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Probing wgpu adapters loads the Vulkan drivers, whose Wayland support prints
/// "XDG_RUNTIME_DIR is invalid" on headless machines (servers, CI, ssh). Pointing it at a
/// private empty folder makes that probe fail quietly; nothing else reads it.
fn quiet_headless_vulkan() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("seedforge-runtime-{}", uid()));
        let ok = std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() || dir.is_dir();
        if ok {
            // SAFETY: called first thing in main, before any thread exists.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
}

#[cfg(unix)]
fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}
