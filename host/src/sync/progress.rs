//! What a running sync shows while rows move: per source and table the rows and bytes read, per
//! destination the rows written and the batches queued for it, rows per second and the time
//! elapsed. On a terminal it is a live display (indicatif) on standard error; otherwise, or with
//! `--log-console` / `--log-format json`, a progress log record every few seconds
//! (`QUARRY_PROGRESS_INTERVAL` seconds, default 5). The engine reports through the handles
//! below; a disabled [`Progress`] (the default, for embedding and benchmarks) costs one branch.
//! While the live display is up, log records are written around it (`telemetry`). Rates are
//! rows since the display started.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{Notify, mpsc};

/// The progress of one sync run; cheap to clone.
#[derive(Clone, Default)]
pub struct Progress {
    shared: Option<Arc<Shared>>,
    /// Where an embedding program hears of it ([`crate::Sync::events`]).
    events: Option<mpsc::UnboundedSender<Event>>,
}

/// What happens during a sync, as an embedding program hears it ([`crate::Sync::events`]): one
/// event per batch, never per row.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A source starts.
    #[non_exhaustive]
    SourceStarted { source: String },
    /// A source sent `rows` rows (`bytes` of Arrow IPC) of `table`.
    #[non_exhaustive]
    Read {
        source: String,
        table: String,
        rows: u64,
        bytes: u64,
    },
    /// A destination plugin took `rows` rows of `table` that `source` sent (durable once the
    /// destination flushes, at the latest when the source ends).
    #[non_exhaustive]
    Written {
        source: String,
        destination: String,
        table: String,
        rows: u64,
    },
    /// A source and its writes are done; the summary has its rows and errors (a destination's
    /// failure to close, after the last source, is only in [`crate::Sync::run`]'s summary). A
    /// source that does not run (the sync was stopped before it) sends no events.
    SourceFinished(Box<super::SourceSummary>),
}

#[derive(Default)]
struct Counters {
    /// Per source, per table: rows and IPC bytes read, errors.
    tables: BTreeMap<String, BTreeMap<String, TableCounters>>,
    /// Per source and destination: rows written, and the queue to it.
    destinations: BTreeMap<(String, String), DestinationCounters>,
}

#[derive(Default, Clone, Copy)]
struct TableCounters {
    rows: u64,
    bytes: u64,
    errors: u64,
}

#[derive(Default)]
struct DestinationCounters {
    rows: u64,
    flushes: u64,
    queue: Option<mpsc::WeakSender<super::WriteMessage>>,
}

struct Shared {
    counters: Mutex<Counters>,
    started: Instant,
    stop: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Display {
    Live,
    Lines(Duration),
}

impl Progress {
    /// Starts showing progress: live on a terminal unless `log_console`, else as log lines.
    pub fn start(log_console: bool) -> Progress {
        let display = if std::io::stderr().is_terminal() && !log_console {
            Display::Live
        } else {
            Display::Lines(interval())
        };
        let shared = Arc::new(Shared {
            counters: Mutex::default(),
            started: Instant::now(),
            stop: Notify::new(),
            task: Mutex::default(),
        });
        let task = tokio::spawn(show(shared.clone(), display));
        if let Ok(mut slot) = shared.task.lock() {
            *slot = Some(task);
        }
        Progress {
            shared: Some(shared),
            events: None,
        }
    }

    /// This progress, also sent as [`Event`]s to `events`.
    pub fn with_events(mut self, events: mpsc::UnboundedSender<Event>) -> Progress {
        self.events = Some(events);
        self
    }

    pub(crate) fn event(&self, event: impl FnOnce() -> Event) {
        if let Some(events) = &self.events {
            // A program that stopped listening does not stop the sync.
            let _ = events.send(event());
        }
    }

    /// Stops the display (the summary follows it).
    pub async fn finish(&self) {
        let Some(shared) = &self.shared else { return };
        shared.stop.notify_one();
        let task = shared.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    pub fn source(&self, source: &str) -> SourceProgress {
        SourceProgress {
            shared: self.shared.clone(),
            events: self.events.clone(),
            source: source.to_string(),
        }
    }

    /// The handle of one destination of `source`, with the queue the engine fills for it.
    pub(crate) fn destination(
        &self,
        source: &str,
        destination: &str,
        queue: &mpsc::Sender<super::WriteMessage>,
    ) -> DestinationProgress {
        let key = (source.to_string(), destination.to_string());
        if let Some(shared) = &self.shared {
            update(shared, |c| {
                c.destinations.entry(key.clone()).or_default().queue = Some(queue.downgrade());
            });
        }
        DestinationProgress {
            shared: self.shared.clone(),
            events: self.events.clone(),
            key,
        }
    }
}

fn update(shared: &Shared, f: impl FnOnce(&mut Counters)) {
    if let Ok(mut counters) = shared.counters.lock() {
        f(&mut counters);
    }
}

/// What a source reports.
pub struct SourceProgress {
    shared: Option<Arc<Shared>>,
    events: Option<mpsc::UnboundedSender<Event>>,
    source: String,
}

impl SourceProgress {
    fn table(&self, table: &str, f: impl FnOnce(&mut TableCounters)) {
        if let Some(shared) = &self.shared {
            update(shared, |c| {
                // Names are allocated once per table, not once per batch.
                if !c.tables.contains_key(&self.source) {
                    c.tables.insert(self.source.clone(), BTreeMap::new());
                }
                let Some(tables) = c.tables.get_mut(&self.source) else {
                    return;
                };
                match tables.get_mut(table) {
                    Some(counters) => f(counters),
                    None => f(tables.entry(table.to_string()).or_default()),
                }
            });
        }
    }

    pub fn rows(&self, table: &str, rows: u64, bytes: u64) {
        self.table(table, |t| {
            t.rows += rows;
            t.bytes += bytes;
        });
        if let Some(events) = &self.events {
            let _ = events.send(Event::Read {
                source: self.source.clone(),
                table: table.to_string(),
                rows,
                bytes,
            });
        }
    }

    pub fn error(&self, table: &str) {
        self.table(table, |t| t.errors += 1);
    }
}

/// What a destination reports.
pub struct DestinationProgress {
    shared: Option<Arc<Shared>>,
    events: Option<mpsc::UnboundedSender<Event>>,
    key: (String, String),
}

impl DestinationProgress {
    /// The handle of a destination that reports nothing (a state backend that takes no rows).
    pub(crate) fn none() -> Self {
        DestinationProgress {
            shared: None,
            events: None,
            key: Default::default(),
        }
    }

    fn counters(&self, f: impl FnOnce(&mut DestinationCounters)) {
        if let Some(shared) = &self.shared {
            // The entry exists from `Progress::destination` on; no key is built per batch.
            update(shared, |c| {
                if let Some(counters) = c.destinations.get_mut(&self.key) {
                    f(counters)
                }
            });
        }
    }

    pub fn written(&self, table: &str, rows: u64) {
        self.counters(|d| d.rows += rows);
        if let Some(events) = &self.events {
            let _ = events.send(Event::Written {
                source: self.key.0.clone(),
                destination: self.key.1.clone(),
                table: table.to_string(),
                rows,
            });
        }
    }

    pub fn flushed(&self) {
        self.counters(|d| d.flushes += 1);
    }
}

fn interval() -> Duration {
    std::env::var("QUARRY_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64)
}

/// A snapshot of the counters, as lines for people.
fn lines(shared: &Shared) -> Vec<String> {
    let elapsed = shared.started.elapsed();
    let Ok(counters) = shared.counters.lock() else {
        return Vec::new();
    };
    let rate = |rows: u64| rows as f64 / elapsed.as_secs_f64().max(0.001);
    let mut lines = Vec::new();
    for (source, tables) in &counters.tables {
        let rows: u64 = tables.values().map(|t| t.rows).sum();
        let bytes: u64 = tables.values().map(|t| t.bytes).sum();
        let each: Vec<String> = tables
            .iter()
            .map(|(name, t)| {
                let errors = if t.errors > 0 {
                    format!(", {} errors", t.errors)
                } else {
                    String::new()
                };
                format!("{name} {}{errors}", t.rows)
            })
            .collect();
        lines.push(format!(
            "{source}: {rows} rows, {} read, {:.0} rows/s ({})",
            crate::sandbox::human_bytes(bytes),
            rate(rows),
            each.join(", ")
        ));
    }
    for ((source, destination), d) in &counters.destinations {
        let queued = d
            .queue
            .as_ref()
            .and_then(|q| q.upgrade())
            .map_or(0, |q| q.max_capacity() - q.capacity());
        lines.push(format!(
            "{source} → {destination}: {} rows written, {:.0} rows/s, {queued} batches queued",
            d.rows,
            rate(d.rows)
        ));
    }
    lines
}

async fn show(shared: Arc<Shared>, display: Display) {
    match display {
        Display::Live => live(shared).await,
        Display::Lines(every) => loop {
            tokio::select! {
                _ = shared.stop.notified() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let elapsed = shared.started.elapsed().as_secs();
            for line in lines(&shared) {
                tracing::info!(elapsed_s = elapsed, "progress: {line}");
            }
        },
    }
}

async fn live(shared: Arc<Shared>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    crate::telemetry::set_live_display(Some(multi.clone()));
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: Vec<ProgressBar> = Vec::new();
    loop {
        let current = lines(&shared);
        while bars.len() < current.len() {
            bars.push(multi.add(ProgressBar::new_spinner().with_style(style.clone())));
        }
        for (bar, line) in bars.iter().zip(current) {
            bar.set_message(line);
            bar.tick();
        }
        tokio::select! {
            _ = shared.stop.notified() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    for bar in bars {
        bar.finish_and_clear();
    }
    crate::telemetry::set_live_display(None);
}
