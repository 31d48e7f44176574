use clap::Parser;
use quarry::cli::{self, Cli, CliError, Exit};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let cli::Command::Serve(_) = cli.command {
        quarry::telemetry::init_served(cli.log_level, cli.log_format);
    } else {
        quarry::telemetry::init(cli.log_level, cli.log_format);
    }
    let exit = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime
            .block_on(cli::run(cli))
            .unwrap_or_else(|e| report(&e)),
        Err(e) => report(&CliError::Runtime(
            anyhow::Error::new(e).context("cannot start the async runtime"),
        )),
    };
    std::process::ExitCode::from(exit as u8)
}

/// The one edge where a command's error is printed and becomes the exit code the README lists:
/// 2 for the configuration or the command line, 3 for a plugin or the runtime that failed (1
/// for an error a plugin returned, as during a sync).
fn report(e: &CliError) -> Exit {
    match e {
        CliError::Config(e) => {
            eprintln!("{e}");
            Exit::Config
        }
        CliError::Plugin(e) => {
            cli::report_plugin_error(e);
            Exit::for_plugin_error(e).max(Exit::SyncErrors)
        }
        CliError::Usage(_) => {
            eprintln!("{e}");
            Exit::Config
        }
        CliError::Runtime(_) => {
            eprintln!("{e}");
            Exit::Failure
        }
    }
}
