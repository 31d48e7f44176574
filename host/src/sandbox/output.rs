//! A plugin's standard output and error: each complete line goes to the host log as it is
//! written, tagged with the plugin's name; past [`super::OUTPUT_CAP`] bytes the rest is counted
//! and dropped, so a chatty or hostile plugin cannot fill the disk or memory. The last lines are
//! kept so that a crash can be explained with what the plugin said just before it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

const KEEP_LINES: usize = 20;
const MAX_LINE: usize = 8 * 1024;

#[derive(Clone)]
pub struct PluginOutput {
    plugin: Arc<str>,
    stream: &'static str,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    partial: Vec<u8>,
    logged: usize,
    dropped: usize,
    last: VecDeque<String>,
}

impl PluginOutput {
    pub fn new(plugin: &str, stream: &'static str) -> Self {
        PluginOutput {
            plugin: plugin.into(),
            stream,
            state: Arc::default(),
        }
    }

    fn accept(&self, bytes: &[u8]) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        for &byte in bytes {
            if byte == b'\n' {
                let line = std::mem::take(&mut state.partial);
                self.line(&mut state, &line);
                continue;
            }
            if state.partial.len() >= MAX_LINE {
                let line = std::mem::take(&mut state.partial);
                self.line(&mut state, &line);
            }
            state.partial.push(byte);
        }
    }

    fn line(&self, state: &mut State, line: &[u8]) {
        let text = String::from_utf8_lossy(line).trim_end().to_string();
        if state.last.len() == KEEP_LINES {
            state.last.pop_front();
        }
        state.last.push_back(text.clone());
        if state.logged + line.len() > super::OUTPUT_CAP {
            state.dropped += line.len() + 1;
            return;
        }
        state.logged += line.len() + 1;
        tracing::info!(plugin = %self.plugin, stream = self.stream, "{text}");
    }

    /// Logs a trailing partial line and how much was dropped.
    pub fn finish(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if !state.partial.is_empty() {
            let line = std::mem::take(&mut state.partial);
            self.line(&mut state, &line);
        }
        if state.dropped > 0 {
            tracing::warn!(
                plugin = %self.plugin,
                stream = self.stream,
                dropped_bytes = state.dropped,
                "plugin output over the {} byte cap was dropped",
                super::OUTPUT_CAP
            );
            state.dropped = 0;
        }
    }

    /// The last lines written, oldest first.
    pub fn last_lines(&self) -> Vec<String> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let mut lines: Vec<String> = state.last.iter().cloned().collect();
        if !state.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&state.partial).into_owned());
        }
        lines
    }
}

impl IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for PluginOutput {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for PluginOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for PluginOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_kept_and_capped() {
        let out = PluginOutput::new("p", "stderr");
        out.accept(b"first\nsecond\npart");
        assert_eq!(out.last_lines(), ["first", "second", "part"]);
        let big = vec![b'x'; super::super::OUTPUT_CAP];
        out.accept(&big);
        out.accept(b"\n");
        let state = out.state.lock().unwrap();
        assert!(state.dropped > 0);
        assert!(state.logged <= super::super::OUTPUT_CAP);
    }
}
