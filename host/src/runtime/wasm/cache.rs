//! Compiled components on disk, so that a second run starts in milliseconds instead of
//! recompiling. The key is the component's sha256 and the engine's compatibility hash: a new
//! wasmtime or a changed engine configuration makes old entries miss instead of failing to load.
//!
//! A compiled entry is machine code that is run as it is, so it is authenticated before it is
//! deserialized: beside each `.cwasm` a `.mac` file holds an HMAC-SHA256 of its bytes under a
//! key that only this user's quarry reads (`.key` in the cache directory, created with mode
//! 0600 on first use). No grant may reach the cache directory (`plan::open` refuses one that
//! does), so a plugin cannot plant an entry, and an entry whose bytes no longer match (a flipped
//! bit, a partial copy, an edit) is reported and compiled again from the component, never
//! loaded. Entries are read into memory and deserialized from there: no file is mapped.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompileCache {
    dir: Option<PathBuf>,
    /// The key entries are authenticated with, read or made on first use.
    key: std::sync::OnceLock<Option<ring::hmac::Key>>,
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
        CompileCache {
            dir,
            key: std::sync::OnceLock::new(),
        }
    }

    /// The cache's key: `.key` in its directory, made (32 random bytes, mode 0600) if missing.
    /// `None` when it can be neither read nor made: nothing is cached then.
    fn key(&self) -> Option<&ring::hmac::Key> {
        self.key
            .get_or_init(|| {
                let dir = self.dir.as_ref()?;
                match read_or_make_key(&dir.join(".key")) {
                    Ok(bytes) => Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes)),
                    Err(e) => {
                        tracing::warn!(cache = %dir.display(), "compiled components are not cached: no key: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// The entry's tag: an HMAC over the digest of the component it was compiled from and the
    /// compiled bytes, so an entry authenticates only as the compilation of that component (a
    /// genuine entry renamed to another component's name does not load).
    fn tag(&self, digest: &str, bytes: &[u8]) -> Option<String> {
        let mut context = ring::hmac::Context::with_key(self.key()?);
        context.update(b"quarry compiled component\0");
        context.update(digest.as_bytes());
        context.update(b"\0");
        context.update(bytes);
        Some(hex(context.sign().as_ref()))
    }

    fn entry(&self, engine: &Engine, digest: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join(format!("{digest}-{}.cwasm", engine_hash(engine))),
        )
    }

    /// The entry's bytes if they are still the bytes that were stored; `None` (and a warning
    /// naming the file) for an entry that is missing, unreadable or changed.
    fn verified(&self, plugin: &str, path: &Path, digest: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(path).ok()?;
        let Ok(recorded) = std::fs::read_to_string(path.with_extension("mac")) else {
            tracing::info!(plugin, cache = %path.display(), "the compiled component in the cache has no tag (an older quarry stored it); compiling the component again");
            return None;
        };
        // A plain comparison: whoever could time it could read the key beside it.
        if recorded.trim() == self.tag(digest, &bytes)? {
            return Some(bytes);
        }
        tracing::warn!(
            plugin,
            cache = %path.display(),
            "the compiled component in the cache was changed after this quarry stored it (or was compiled from another component); it is not loaded, and the component is compiled again"
        );
        None
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
        let cached = entry
            .as_deref()
            .filter(|p| p.is_file())
            .and_then(|p| Some((p, self.verified(plugin, p, digest)?)));
        if let Some((path, bytes)) = cached {
            // SAFETY: the bytes are those `Component::serialize` of this engine's configuration
            // (the file name carries its compatibility hash) wrote, as their tag under this
            // cache's key shows, into a directory no plugin is granted.
            match unsafe { Component::deserialize(engine, &bytes) } {
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
        let serialized = component.serialize()?;
        if let (Some(path), Some(tag)) = (entry, self.tag(digest, &serialized))
            && let Err(e) = store(&path, &serialized, &tag)
        {
            tracing::warn!(plugin, cache = %path.display(), "could not cache the compiled component: {e}");
        }
        Ok((component, true))
    }
}

/// Writes the entry and then its tag, each through a temporary file and a rename, so a
/// concurrent run never reads half of either (and an entry without its tag is not loaded).
fn store(path: &Path, bytes: &[u8], tag: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let write = |target: &Path, contents: &[u8]| {
        let tmp = target.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, contents)?;
        std::fs::rename(&tmp, target)
    };
    write(path, bytes)?;
    write(&path.with_extension("mac"), tag.as_bytes())
}

/// Reads the key at `path`, or makes one: 32 random bytes, readable by this user only, written
/// with `create_new` so two processes starting at once agree on one key.
fn read_or_make_key(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 32 => return Ok(bytes),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is not a key",
                path.display()
            )));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| std::io::Error::other("no random bytes from the system"))?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(&bytes)?;
            file.sync_all()?;
            Ok(bytes)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: the preamble of the component binary format, no sections.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn a_changed_entry_is_compiled_again_never_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = CompileCache::new(Some(dir.path().to_path_buf()));
        let engine = Engine::default();
        let digest = sha256_hex(EMPTY_COMPONENT);
        let load = || {
            cache
                .load_or_compile(&engine, "empty", EMPTY_COMPONENT, &digest)
                .expect("compiles")
                .1
        };
        assert!(load(), "the first load compiles");
        assert!(!load(), "the second comes from the cache");
        let entry = cache.entry(&engine, &digest).expect("an entry");
        let mut bytes = std::fs::read(&entry).expect("the entry");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&entry, &bytes).expect("flip a bit");
        assert!(load(), "a changed entry is compiled again");
        assert!(!load(), "and stored afresh");
        std::fs::remove_file(entry.with_extension("mac")).expect("drop the tag");
        assert!(load(), "an entry without its tag is compiled again");
        // An entry and tag written with another key (a planted pair) are not loaded either.
        let other = tempfile::tempdir().expect("tempdir");
        let planter = CompileCache::new(Some(other.path().to_path_buf()));
        planter
            .load_or_compile(&engine, "empty", EMPTY_COMPONENT, &digest)
            .expect("compiles");
        let planted = planter.entry(&engine, &digest).expect("an entry");
        std::fs::copy(&planted, &entry).expect("plant the entry");
        std::fs::copy(planted.with_extension("mac"), entry.with_extension("mac")).expect("tag");
        assert!(load(), "a planted entry is compiled again");
        // A genuine entry and tag, renamed to another component's digest, do not load as it.
        let entry = cache.entry(&engine, &digest).expect("an entry");
        let elsewhere = "0".repeat(64);
        let renamed = cache.entry(&engine, &elsewhere).expect("an entry");
        std::fs::copy(&entry, &renamed).expect("rename the entry");
        std::fs::copy(entry.with_extension("mac"), renamed.with_extension("mac")).expect("tag");
        assert!(
            cache.verified("other", &renamed, &elsewhere).is_none(),
            "an entry authenticates only as the component it was compiled from"
        );
        assert!(cache.verified("empty", &entry, &digest).is_some());
    }
}
