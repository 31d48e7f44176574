//! A native plugin's process: started as CloudQuery's CLI starts one
//! (`serve --network unix --address <socket> --log-format json --log-level <level>`), its JSON log
//! lines on standard output re-logged by the host, its standard error kept for error messages,
//! and stopped with SIGINT, then SIGKILL after a grace period.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quarry_grpc::connect::{self, Address};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

use crate::runtime::{ErrorKind, Phase, PluginError};
use crate::sandbox::PluginOutput;

/// How long a plugin has to start listening (Python and Node plugins import a lot first).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a plugin has to exit after SIGINT.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Log lines of the plugin's kept to explain a failure.
const KEEP_LINES: usize = 20;

/// The native plugins this process started and has not yet reaped, by pid (each leads its own
/// process group). A second interrupt exits at once, and `std::process::exit` runs no drops:
/// [`kill_all`] stops them from this list instead of leaving them running (and holding files).
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<u32>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills every native plugin still running, with its process group; for an exit that skips
/// the drops that would stop them.
pub fn kill_all() {
    for &pid in running().iter() {
        // SAFETY: `kill` has no memory-safety preconditions; each pid is a child of ours that
        // has not been reaped (it leaves the list before it is), leading its own group.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
}

fn forget(pid: Option<u32>) {
    if let Some(pid) = pid {
        running().retain(|&p| p != pid);
    }
}

pub struct PluginProcess {
    name: String,
    child: Child,
    socket: Option<PathBuf>,
    stderr: PluginOutput,
    /// Copies standard error until the plugin closes it.
    stderr_copy: Option<tokio::task::JoinHandle<()>>,
    /// The plugin's last warnings and errors from its log.
    logged: Arc<Mutex<Logged>>,
}

impl PluginProcess {
    /// Starts `executable` and connects to it. Plugins whose `serve` cannot listen on a Unix
    /// socket (CloudQuery's JavaScript SDK accepts only tcp) are started again on a loopback port.
    pub async fn start(
        name: &str,
        executable: &Path,
    ) -> Result<(PluginProcess, Channel), PluginError> {
        let socket = socket_path(name);
        let mut process = Self::spawn(name, executable, Address::Unix(socket.clone()))?;
        match process.connect(&Address::Unix(socket)).await {
            Ok(channel) => return Ok((process, channel)),
            Err(Some(e)) => return Err(e),
            Err(None) => tracing::debug!(
                plugin = name,
                "the plugin exited at once on a Unix socket; trying a loopback port"
            ),
        }
        let port = free_port().map_err(|e| {
            PluginError::new(
                name,
                Phase::Load,
                ErrorKind::Load,
                format!("no free loopback port: {e}"),
            )
        })?;
        let address = Address::Tcp(format!("127.0.0.1:{port}"));
        let mut process = Self::spawn(name, executable, address.clone())?;
        match process.connect(&address).await {
            Ok(channel) => Ok((process, channel)),
            Err(Some(e)) => Err(e),
            Err(None) => Err(process.start_error("exited before it listened").await),
        }
    }

    fn spawn(
        name: &str,
        executable: &Path,
        address: Address,
    ) -> Result<PluginProcess, PluginError> {
        let (network, address_arg, socket) = match &address {
            Address::Unix(path) => ("unix", path.display().to_string(), Some(path.clone())),
            Address::Tcp(addr) => ("tcp", addr.clone(), None),
        };
        let mut child = Command::new(executable)
            .args(["serve", "--network", network, "--address", &address_arg])
            .args(["--log-format", "json", "--log-level", log_level()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: the user's Ctrl-C reaches quarry, which stops the plugin
            // after closing it properly.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                PluginError::new(
                    name,
                    Phase::Load,
                    ErrorKind::Load,
                    format!("cannot start {}: {e}", executable.display()),
                )
                .with_help("`path` must name an executable plugin (or a .wasm component)")
            })?;
        running().extend(child.id());
        let stderr = PluginOutput::new(name, "stderr");
        let stderr_copy = child.stderr.take().map(|mut pipe| {
            let mut sink = stderr.clone();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut pipe, &mut sink).await;
                sink.finish();
            })
        });
        let logged: Arc<Mutex<Logged>> = Arc::default();
        if let Some(pipe) = child.stdout.take() {
            let (plugin, logged) = (name.to_string(), logged.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    relog(&plugin, &line, &logged);
                }
            });
        }
        Ok(PluginProcess {
            name: name.to_string(),
            child,
            socket,
            stderr,
            stderr_copy,
            logged,
        })
    }

    /// Waits for the plugin to listen. `Err(None)`: it exited first.
    async fn connect(&mut self, address: &Address) -> Result<Channel, Option<PluginError>> {
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(20);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(None);
            }
            if let Ok(channel) = connect::dial(address).await {
                return Ok(channel);
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(Some(
                    self.start_error(&format!(
                        "did not listen on {address} within {}s",
                        START_TIMEOUT.as_secs()
                    ))
                    .await,
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
    }

    async fn start_error(&mut self, what: &str) -> PluginError {
        self.drain_stderr().await;
        let mut message = format!("the plugin {what}");
        let last = self.last_output();
        if !last.is_empty() {
            message.push_str(&format!("; its last output: {}", last.join(" | ")));
        }
        PluginError::new(&self.name, Phase::Load, ErrorKind::Load, message)
            .with_help("run it by hand with `serve` to see why it does not start")
    }

    /// How the process ended, if it has.
    pub async fn exited(&mut self) -> Option<String> {
        // Give a dying process a moment, so that its exit explains a broken connection.
        for _ in 0..10 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(match status.code() {
                    Some(code) => format!("exited with code {code}"),
                    None => {
                        use std::os::unix::process::ExitStatusExt;
                        format!("was killed by signal {}", status.signal().unwrap_or(0))
                    }
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Once the plugin has exited, waits (briefly) until everything it wrote to standard error
    /// has been read, so that an error message can quote its last words.
    pub async fn drain_stderr(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait()
            && let Some(copy) = self.stderr_copy.take()
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), copy).await;
        }
    }

    /// The plugin's last standard-error lines and logged warnings and errors.
    pub fn last_output(&self) -> Vec<String> {
        let mut lines = self.stderr.last_lines();
        if let Ok(logged) = self.logged.lock() {
            lines.extend(logged.lines.iter().cloned());
        }
        lines
    }

    /// The warnings and errors the plugin has logged so far.
    pub fn log_counts(&self) -> crate::telemetry::LogCounts {
        self.logged.lock().map(|l| l.counts).unwrap_or_default()
    }

    /// SIGINT, then SIGKILL if it has not exited after the grace period.
    pub async fn stop(&mut self) {
        let pid = self.child.id();
        if let Some(pid) = pid {
            // SAFETY: `kill` has no memory-safety preconditions; the pid is our own child's,
            // which has not been reaped (`id` returns None once it has).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGINT);
            }
            if tokio::time::timeout(STOP_GRACE, self.child.wait())
                .await
                .is_err()
            {
                tracing::warn!(plugin = %self.name, "the plugin did not stop within {}s of SIGINT; killing it", STOP_GRACE.as_secs());
                let _ = self.child.kill().await;
            }
        }
        forget(pid);
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        forget(self.child.id());
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
    }
}

fn socket_path(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let safe: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(24)
        .collect();
    std::env::temp_dir().join(format!(
        "quarry-{}-{}-{safe}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The host's own level, passed on so that a plugin does not log what would be dropped.
fn log_level() -> &'static str {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE => "trace",
        LevelFilter::DEBUG => "debug",
        LevelFilter::INFO => "info",
        LevelFilter::WARN => "warn",
        _ => "error",
    }
}

/// Re-logs one line of the plugin's standard output: a JSON object from CloudQuery's SDKs (Go:
/// `message`, Python: `event`, JavaScript: `message`; all: `level`), or plain text. Info and
/// below become debug.
/// A plugin's last warnings and errors (for error messages), and how many it logged.
#[derive(Default)]
struct Logged {
    lines: VecDeque<String>,
    counts: crate::telemetry::LogCounts,
}

fn relog(plugin: &str, line: &str, logged: &Mutex<Logged>) {
    let line = line.trim();
    if line.is_empty() {
        return;
    }
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        tracing::debug!(plugin, "{line}");
        return;
    };
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s,
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let level = text(fields.remove("level")).to_ascii_lowercase();
    let message = text(fields.remove("message").or_else(|| fields.remove("event")));
    for key in ["time", "timestamp", "module"] {
        fields.remove(key);
    }
    let rest: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let full = if rest.is_empty() {
        message
    } else {
        format!("{message} {}", rest.join(" "))
    };
    match level.as_str() {
        "trace" => tracing::trace!(plugin, "{full}"),
        "debug" => tracing::debug!(plugin, "{full}"),
        "warn" | "warning" | "error" | "fatal" | "panic" | "critical" => {
            if level.starts_with('w') {
                tracing::warn!(plugin, "{full}");
            } else {
                tracing::error!(plugin, "{full}");
            }
            if let Ok(mut logged) = logged.lock() {
                logged.counts.count(!level.starts_with('w'));
                if logged.lines.len() == KEEP_LINES {
                    logged.lines.pop_front();
                }
                logged.lines.push_back(full);
            }
        }
        // A plugin's own progress is detail next to quarry's: its warnings and errors show.
        _ => tracing::debug!(plugin, "{full}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_log_lines_keep_warnings_and_errors_for_error_messages() {
        let logged = Mutex::new(Logged::default());
        relog(
            "p",
            r#"{"level":"info","message":"started","address":"/tmp/x"}"#,
            &logged,
        );
        relog(
            "p",
            r#"{"level":"error","event":"table failed","table":"t"}"#,
            &logged,
        );
        relog("p", "plain text", &logged);
        let logged = logged.into_inner().unwrap();
        assert_eq!(logged.counts.errors, 1);
        let lines: Vec<String> = logged.lines.into();
        assert_eq!(lines, vec![r#"table failed table="t""#.to_string()]);
    }
}
