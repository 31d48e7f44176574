use clap::Parser;
use quarry::cli::{self, Cli, Exit};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let cli::Command::Serve(_) = cli.command {
        quarry::telemetry::init_served(cli.log_level, cli.log_format);
    } else {
        quarry::telemetry::init(cli.log_level, cli.log_format);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(Exit::Failure as u8);
        }
    };
    let exit = runtime.block_on(cli::run(cli));
    std::process::ExitCode::from(exit as u8)
}
