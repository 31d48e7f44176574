//! Logging: `tracing` records on standard error, as text or JSON lines, at the level asked for.
//! `QUARRY_LOG` (a `tracing` filter such as `quarry=debug`) overrides the level when set.

use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(level: LogLevel, format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("QUARRY_LOG").unwrap_or_else(|_| EnvFilter::new(directive(level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Stderr(Vec::new()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.compact().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn directive(level: LogLevel) -> String {
    format!("warn,quarry={0},quarry_grpc={0}", level.as_str())
}

/// For `quarry serve`: logs on standard output, where the CloudQuery CLI that started it reads
/// them, in its JSON shape.
pub fn init_served(level: LogLevel, format: LogFormat) {
    let filter = std::env::var("QUARRY_LOG").unwrap_or_else(|_| directive(level));
    quarry_grpc::serve::init_logging(&filter, format == LogFormat::Json);
}

/// How many warnings and errors a plugin has logged, as CloudQuery counts them for its summary
/// (its WARN and ERROR log records). Each plugin instance keeps its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounts {
    pub warnings: u64,
    pub errors: u64,
}

impl LogCounts {
    /// Counts one record: a warning, or (`error`) an error.
    pub fn count(&mut self, error: bool) {
        if error {
            self.errors += 1;
        } else {
            self.warnings += 1;
        }
    }

    /// What was logged since `before` was taken.
    pub fn since(self, before: LogCounts) -> LogCounts {
        LogCounts {
            warnings: self.warnings.saturating_sub(before.warnings),
            errors: self.errors.saturating_sub(before.errors),
        }
    }
}

/// The live progress display, while one is shown: log records are written around it.
static LIVE: Mutex<Option<indicatif::MultiProgress>> = Mutex::new(None);

/// Log records go around `display` until it is taken down (`None`).
pub fn set_live_display(display: Option<indicatif::MultiProgress>) {
    if let Ok(mut live) = LIVE.lock() {
        *live = display;
    }
}

/// Standard error for one log record: written whole when dropped, with a live display hidden
/// while it is, so bars and records never tear each other.
struct Stderr(Vec<u8>);

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Stderr {
    fn drop(&mut self) {
        let write = || {
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &self.0);
        };
        let live = LIVE.lock().ok().and_then(|live| live.clone());
        match live {
            Some(display) => display.suspend(write),
            None => write(),
        }
    }
}
