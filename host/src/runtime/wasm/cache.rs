//! Compiled components on disk, so that a second run starts in milliseconds instead of
//! recompiling. The key is the component's sha256 and the engine's compatibility hash: a new
//! wasmtime or a changed engine configuration makes old entries miss instead of failing to load.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// Feeds `Hash` output into sha256, for a key that is stable across processes (unlike
/// `DefaultHasher`, whose seed and algorithm are not promised).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn engine_hash(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex(&hasher.0.finalize()[..8])
}

impl CompileCache {
    /// A cache in `dir`, or none (always compile) when `dir` is `None`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    fn entry(&self, engine: &Engine, digest: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join(format!("{digest}-{}.cwasm", engine_hash(engine))),
        )
    }

    /// The compiled component, and whether it had to be compiled now.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        plugin: &str,
        bytes: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, bool)> {
        let entry = self.entry(engine, digest);
        if let Some(path) = entry.as_deref().filter(|p| p.is_file()) {
            // SAFETY: the entry was written by `Component::serialize` of this engine's
            // configuration (the file name carries its compatibility hash) into a directory
            // only this user's quarry writes; a truncated or foreign file fails the header
            // checks of `deserialize_file` and is recompiled below.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(component) => {
                    tracing::debug!(plugin, cache = %path.display(), "loaded compiled component from cache");
                    return Ok((component, false));
                }
                Err(e) => {
                    tracing::warn!(plugin, cache = %path.display(), "ignoring unusable cache entry: {e}")
                }
            }
        }
        let started = Instant::now();
        let component = Component::new(engine, bytes)?;
        tracing::info!(
            plugin,
            size_kib = bytes.len() / 1024,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled plugin component"
        );
        if let Some(path) = entry
            && let Err(e) = store(&path, &component.serialize()?)
        {
            tracing::warn!(plugin, cache = %path.display(), "could not cache the compiled component: {e}");
        }
        Ok((component, true))
    }
}

/// Writes through a temporary file and a rename, so a concurrent run never reads half an entry.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
