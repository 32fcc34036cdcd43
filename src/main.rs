use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = seedforge::cli::Cli::parse();
    match seedforge::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
