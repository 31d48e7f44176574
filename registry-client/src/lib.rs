//! Resolves a plugin reference — `(registry, path, version)` from a spec — to a local artifact
//! whose bytes and sha256 are in hand, ready to be verified and compiled.
//!
//! Registries:
//! - `quarry`: the first-party plugins ([`FIRST_PARTY`]) shipped with the CLI, found on a search
//!   path (see [`Resolver::from_env`]), so that they work offline out of the box;
//! - `local`: a component file on disk, or a native plugin's executable;
//! - `grpc`: the address of a running plugin (CloudQuery plugin protocol v3);
//! - `oci`: a component published as an OCI artifact ([`oci`]), kept in a content-addressed
//!   [`store`], pinned by a [`lock`] file and, where required, checked against [`signature`]s;
//! - `cloudquery`: a CloudQuery spec's `cloudquery/<name>`, run as Quarry's own plugin of that
//!   name ([`cloudquery_equivalent`]) or, for others, fetched from a configured OCI mirror.
//!
//! CloudQuery's `github` and `docker` registries are read so that a spec using them gets a
//! precise refusal, not a parse error.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

mod digest;
mod first_party;
pub mod lock;
pub mod oci;
pub mod signature;
pub mod store;

pub use digest::{Digest, DigestError};
pub use first_party::{FIRST_PARTY, FirstParty};

/// Where a plugin comes from: a spec's `registry:` (the spec loader reads it by these names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// First-party plugins shipped with the CLI; `path` is `OWNER/NAME`, e.g. `quarry/test`.
    #[default]
    Quarry,
    /// A component file or a native plugin's executable on disk; `path` is a file path.
    Local,
    /// A native plugin already serving gRPC; `path` is its address.
    Grpc,
    /// A component published to an OCI registry; `path` is `<registry-host>/<repository>`.
    Oci,
    /// CloudQuery's Hub, as a CloudQuery spec names it; `path` is `TEAM/NAME`.
    Cloudquery,
    /// CloudQuery's deprecated GitHub releases registry: refused with what to do instead.
    Github,
    /// A plugin in a Docker image: refused with what to do instead.
    Docker,
}

impl RegistryKind {
    /// Every registry kind.
    pub const ALL: &[Self] = &[
        Self::Quarry,
        Self::Local,
        Self::Grpc,
        Self::Oci,
        Self::Cloudquery,
        Self::Github,
        Self::Docker,
    ];

    /// The name a spec uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryKind::Quarry => "quarry",
            RegistryKind::Local => "local",
            RegistryKind::Grpc => "grpc",
            RegistryKind::Oci => "oci",
            RegistryKind::Cloudquery => "cloudquery",
            RegistryKind::Github => "github",
            RegistryKind::Docker => "docker",
        }
    }
}

impl std::fmt::Display for RegistryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resolved plugin: the file it came from, its bytes and their sha256.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The file the bytes were read from.
    pub path: PathBuf,
    /// The component (shared: every plugin of a spec that names this file holds the same bytes;
    /// a `Vec` inside, so the buffer read is kept rather than copied).
    pub bytes: Arc<Vec<u8>>,
    /// Lowercase hex sha256 of `bytes`.
    pub sha256: String,
}

/// What a plugin reference resolved to.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// A WebAssembly component, read.
    Component(Artifact),
    /// A native plugin's executable, to be started with `serve`.
    Executable(PathBuf),
    /// A running plugin's address.
    Address(String),
}

/// Why a plugin reference could not be resolved. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// `quarry/<name>` names no first-party plugin.
    #[error("unknown plugin `{path}`: the first-party plugins are {known}")]
    UnknownPlugin {
        /// The path as written.
        path: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// A first-party plugin that exists but whose component is not on the search path.
    #[error(
        "plugin `{path}` is not built: no {file} in {searched}; build the plugins with `cargo plugins` (or set QUARRY_PLUGIN_DIR)"
    )]
    NotBuilt {
        /// The path as written.
        path: String,
        /// The file name looked for.
        file: String,
        /// The directories searched.
        searched: String,
    },
    /// A `quarry` path that is not `quarry/<name>`.
    #[error(
        "plugin path `{0}` should be `quarry/<name>` for registry `quarry`, e.g. `quarry/test`"
    )]
    BadPath(String),
    /// A local file that cannot be read.
    #[error("cannot read plugin `{path}`: {source}")]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A local file that is neither a component nor an executable.
    #[error(
        "`{0}` is neither a WebAssembly component nor an executable; give a .wasm component, or a native plugin's executable (chmod +x)"
    )]
    NotAPlugin(String),
    /// A file named `*.wasm` that is not a component (an executable posing as one is refused,
    /// never run).
    #[error(
        "`{0}` is named as a WebAssembly component but is not one (it does not start with `\\0asm`); Quarry never runs a `.wasm` file natively"
    )]
    NotAComponent(String),
    /// A registry the caller must fetch from (OCI plugins are fetched asynchronously, through
    /// the store and the lock, not by this resolver).
    #[error("registry `{0}` plugins are fetched through the plugin store")]
    Remote(&'static str),
    /// A CloudQuery Hub plugin Quarry has no plugin of its own for.
    #[error(
        "`{path}` is a CloudQuery Hub plugin Quarry has no equivalent of (it runs {known} as its own plugins)"
    )]
    NoEquivalent {
        /// The path as written.
        path: String,
        /// The CloudQuery paths that map to first-party plugins, comma-separated.
        known: String,
    },
    /// A registry Quarry does not fetch from (`github`, `docker`).
    #[error("Quarry does not fetch plugins from registry `{0}`")]
    Unsupported(RegistryKind),
}

/// The first-party plugin a CloudQuery Hub path (`cloudquery/<name>`) runs as, if there is one.
pub fn cloudquery_equivalent(path: &str) -> Option<&'static FirstParty> {
    match path.split_once('/') {
        Some(("cloudquery", name)) => FirstParty::named(name),
        _ => None,
    }
}

/// Resolves plugin references against a search path of first-party plugin directories.
#[derive(Debug, Clone)]
pub struct Resolver {
    search_path: Vec<PathBuf>,
    /// The components this resolver (and its clones) read, by file: a plugin that several
    /// sources and destinations of one spec name is read and hashed once, not once each.
    read: Arc<Mutex<HashMap<PathBuf, (FileStamp, Artifact)>>>,
    /// How long ago a file must have last changed for its stamp to be trusted (see
    /// [`FileStamp::settled`]).
    settle: Duration,
}

/// A file's timestamps may move only once per clock tick (or per second, or two, on some file
/// systems): a file changed less than this before it was read may change again without its
/// stamp showing it, so it is not remembered.
const SETTLE: Duration = Duration::from_secs(2);

/// What identifies one version of a file without reading it: the same inode with the same size,
/// modification and change times (the change time no one but the kernel sets). A file replaced
/// or written since it was read is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// Whether the file last changed at least `settle` before `read_at`: only then does an
    /// equal stamp later mean equal bytes.
    fn settled(&self, read_at: SystemTime, settle: Duration) -> bool {
        let (secs, nanos) = self.ctime;
        let Ok(secs) = u64::try_from(secs) else {
            return false;
        };
        let changed =
            SystemTime::UNIX_EPOCH + Duration::new(secs, nanos.clamp(0, 999_999_999) as u32);
        read_at
            .duration_since(changed)
            .is_ok_and(|age| age >= settle)
    }
}

impl Resolver {
    /// A resolver that looks for first-party plugins in `search_path`, in order.
    pub fn new(search_path: Vec<PathBuf>) -> Self {
        Resolver {
            search_path,
            read: Arc::default(),
            settle: SETTLE,
        }
    }

    /// Lets go of the components read so far (their bytes are compiled by then): call it once a
    /// plan's plugins are open, so a sync does not hold every component's bytes while it runs.
    pub fn forget_read(&self) {
        if let Ok(mut read) = self.read.lock() {
            read.clear();
        }
    }

    /// The component in `file`: read and hashed, unless this resolver read the same version of
    /// it before. What is remembered is the stamp of the open file the bytes came from, equal
    /// before and after the read, of a file that had not changed for [`SETTLE`]: a file
    /// replaced (a link flipped back and forth, say) or rewritten is read again.
    fn component(&self, file: &Path, as_written: &str) -> Result<Artifact, ResolveError> {
        let key = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        if let Ok(metadata) = std::fs::metadata(file)
            && let Ok(read) = self.read.lock()
            && let Some((seen, artifact)) = read.get(&key)
            && *seen == FileStamp::of(&metadata)
        {
            return Ok(artifact.clone());
        }
        let read_at = SystemTime::now();
        let (artifact, stamp) = read(file, as_written)?;
        if let Some(stamp) = stamp.filter(|s| s.settled(read_at, self.settle))
            && let Ok(mut read) = self.read.lock()
        {
            read.insert(key, (stamp, artifact.clone()));
        }
        Ok(artifact)
    }

    /// The default search path: every directory in `QUARRY_PLUGIN_DIR` (`:`-separated), then
    /// `plugins/` beside the executable, then the cargo build directory of the same profile
    /// (`target/wasm32-wasip2/<profile>/` for `target/<profile>/quarry`), so that a workspace
    /// build runs its own plugins with no configuration.
    pub fn from_env(executable: Option<&Path>) -> Self {
        let mut dirs: Vec<PathBuf> = std::env::var_os("QUARRY_PLUGIN_DIR")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(dir) = executable.and_then(Path::parent) {
            dirs.push(dir.join("plugins"));
            if let (Some(profile), Some(target)) = (dir.file_name(), dir.parent()) {
                dirs.push(target.join("wasm32-wasip2").join(profile));
            }
            // Native plugins are built beside the CLI.
            dirs.push(dir.to_path_buf());
        }
        Resolver::new(dirs)
    }

    /// The directories searched for first-party plugins.
    pub fn search_path(&self) -> &[PathBuf] {
        &self.search_path
    }

    /// Resolves `path` in `registry`. `base` is the directory relative `local` paths start from.
    pub fn resolve(
        &self,
        registry: RegistryKind,
        path: &str,
        base: &Path,
    ) -> Result<Resolved, ResolveError> {
        match registry {
            RegistryKind::Quarry => self.first_party(path),
            RegistryKind::Local => self.local(&base.join(path), path),
            RegistryKind::Grpc => Ok(Resolved::Address(path.to_string())),
            RegistryKind::Oci => Err(ResolveError::Remote("oci")),
            RegistryKind::Cloudquery => match cloudquery_equivalent(path) {
                Some(plugin) => self.first_party(plugin.name),
                None => Err(ResolveError::NoEquivalent {
                    path: path.into(),
                    known: FIRST_PARTY
                        .iter()
                        .map(|p| format!("cloudquery/{}", p.name))
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            },
            kind @ (RegistryKind::Github | RegistryKind::Docker) => {
                Err(ResolveError::Unsupported(kind))
            }
        }
    }

    fn first_party(&self, path: &str) -> Result<Resolved, ResolveError> {
        let name = match path.split_once('/') {
            Some(("quarry", name)) if !name.is_empty() && !name.contains('/') => name,
            Some(_) => return Err(ResolveError::BadPath(path.into())),
            None => path,
        };
        let Some(plugin) = FirstParty::named(name) else {
            let known = FIRST_PARTY
                .iter()
                .map(|p| format!("quarry/{}", p.name))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ResolveError::UnknownPlugin {
                path: path.into(),
                known,
            });
        };
        let native = plugin.native;
        let file = plugin.file_name();
        match self
            .search_path
            .iter()
            .map(|d| d.join(&file))
            .find(|p| p.is_file())
        {
            Some(found) if native => Ok(Resolved::Executable(found)),
            Some(found) => self.component(&found, path).map(Resolved::Component),
            None => Err(ResolveError::NotBuilt {
                path: path.into(),
                file,
                searched: self
                    .search_path
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// A component (it starts with the wasm magic) or an executable.
    fn local(&self, file: &Path, as_written: &str) -> Result<Resolved, ResolveError> {
        use std::io::Read;
        let unreadable = |source| ResolveError::Unreadable {
            path: as_written.into(),
            source,
        };
        let mut magic = [0u8; 4];
        let mut f = std::fs::File::open(file).map_err(unreadable)?;
        let n = f.read(&mut magic).map_err(unreadable)?;
        if n == 4 && &magic == b"\0asm" {
            return self.component(file, as_written).map(Resolved::Component);
        }
        // A file named as a component is never run natively, whatever its mode bits say.
        if file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wasm"))
        {
            return Err(ResolveError::NotAComponent(as_written.into()));
        }
        let executable = {
            use std::os::unix::fs::PermissionsExt;
            f.metadata().map_err(unreadable)?.permissions().mode() & 0o111 != 0
        };
        if executable {
            Ok(Resolved::Executable(
                std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()),
            ))
        } else {
            Err(ResolveError::NotAPlugin(as_written.into()))
        }
    }
}

/// The component in `file`, and the stamp of the file it was read from if that did not change
/// while it was read.
fn read(file: &Path, as_written: &str) -> Result<(Artifact, Option<FileStamp>), ResolveError> {
    use std::io::Read;
    let unreadable = |source| ResolveError::Unreadable {
        path: as_written.into(),
        source,
    };
    let mut f = std::fs::File::open(file).map_err(unreadable)?;
    let before = FileStamp::of(&f.metadata().map_err(unreadable)?);
    let mut bytes = Vec::with_capacity(before.len as usize);
    f.read_to_end(&mut bytes).map_err(unreadable)?;
    let after = FileStamp::of(&f.metadata().map_err(unreadable)?);
    let sha256 = Digest::of(&bytes).hex().to_string();
    let artifact = Artifact {
        path: file.to_path_buf(),
        bytes: bytes.into(),
        sha256,
    };
    Ok((artifact, (before == after).then_some(before)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_party_plugins_resolve_from_the_search_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("quarry_plugin_test.wasm"), b"\0asm").unwrap();
        let resolver = Resolver::new(vec![
            PathBuf::from("/nonexistent"),
            dir.path().to_path_buf(),
        ]);
        for path in ["quarry/test", "test"] {
            let Resolved::Component(artifact) = resolver
                .resolve(RegistryKind::Quarry, path, Path::new("."))
                .unwrap()
            else {
                panic!("not a component")
            };
            assert_eq!(&artifact.bytes[..], b"\0asm");
            assert_eq!(artifact.sha256.len(), 64);
        }
        let err = resolver
            .resolve(RegistryKind::Quarry, "quarry/nope", Path::new("."))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown plugin `quarry/nope`: the first-party plugins are quarry/basic, quarry/duckdb, quarry/file, quarry/hackernews, quarry/jsonflattener, quarry/mysql, quarry/postgresql, quarry/rest, quarry/sqlite, quarry/test"
        );
        let err = resolver
            .resolve(RegistryKind::Quarry, "quarry/file", Path::new("."))
            .unwrap_err();
        assert!(matches!(err, ResolveError::NotBuilt { .. }), "{err}");
        let err = resolver
            .resolve(RegistryKind::Quarry, "cloudquery/test", Path::new("."))
            .unwrap_err();
        assert!(matches!(err, ResolveError::BadPath(_)), "{err}");
    }

    #[test]
    fn cloudquery_hub_paths_run_as_the_first_party_plugin_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("quarry_plugin_test.wasm"), b"\0asm").unwrap();
        let resolver = Resolver::new(vec![dir.path().to_path_buf()]);
        assert!(matches!(
            resolver.resolve(RegistryKind::Cloudquery, "cloudquery/test", Path::new(".")),
            Ok(Resolved::Component(a)) if &a.bytes[..] == b"\0asm"
        ));
        let err = resolver
            .resolve(RegistryKind::Cloudquery, "cloudquery/aws", Path::new("."))
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "`cloudquery/aws` is a CloudQuery Hub plugin Quarry has no equivalent of (it runs cloudquery/basic, cloudquery/duckdb, cloudquery/file,"
            ),
            "{err}"
        );
        // Another team's plugin of the same name is not ours.
        assert!(cloudquery_equivalent("someone/test").is_none());
        let err = resolver
            .resolve(RegistryKind::Docker, "ghcr.io/x/y:1", Path::new("."))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Quarry does not fetch plugins from registry `docker`"
        );
    }

    #[test]
    fn the_default_search_path_follows_the_cargo_layout() {
        let resolver = Resolver::from_env(Some(Path::new("/t/target/debug/quarry")));
        let dirs = resolver.search_path();
        assert!(dirs.ends_with(&[
            PathBuf::from("/t/target/debug/plugins"),
            PathBuf::from("/t/target/wasm32-wasip2/debug"),
            PathBuf::from("/t/target/debug"),
        ]));
    }

    /// The component `p.wasm` in `dir`, resolved by `resolver`.
    fn local_component(resolver: &Resolver, dir: &Path) -> Artifact {
        match resolver.resolve(RegistryKind::Local, "p.wasm", dir) {
            Ok(Resolved::Component(artifact)) => artifact,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_component_named_twice_is_read_once_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, b"\0asm\x0d\0\x01\0").unwrap();
        // Trusted at once (the default waits for a file to settle; see the next test).
        let resolver = Resolver {
            settle: Duration::ZERO,
            ..Resolver::new(Vec::new())
        };
        let first = local_component(&resolver, dir.path());
        // A clone (another source of the spec) shares what was read.
        let again = local_component(&resolver.clone(), dir.path());
        assert!(Arc::ptr_eq(&first.bytes, &again.bytes));
        assert_eq!(first.sha256, again.sha256);
        // A file rewritten in place is read again, even with its size and modification time
        // kept: its change time moved (rewritten until it does, on a coarse clock).
        let stamp = |f: &Path| FileStamp::of(&std::fs::metadata(f).unwrap());
        let original = stamp(&file);
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        for _ in 0..300 {
            std::fs::write(&file, b"\0asm\x0d\0\x01\x01").unwrap();
            let f = std::fs::File::options().write(true).open(&file).unwrap();
            f.set_modified(modified).unwrap();
            if stamp(&file) != original {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(stamp(&file).len, original.len);
        assert_eq!(stamp(&file).mtime, original.mtime);
        let changed = local_component(&resolver, dir.path());
        assert_eq!(&changed.bytes[..], b"\0asm\x0d\0\x01\x01");
        assert_ne!(changed.sha256, first.sha256);
        // A file replaced by another of the same size is read again.
        let replacement = dir.path().join("next.wasm");
        std::fs::write(&replacement, b"\0asm\x0d\0\x01\x02").unwrap();
        std::fs::rename(&replacement, &file).unwrap();
        let replaced = local_component(&resolver, dir.path());
        assert_eq!(&replaced.bytes[..], b"\0asm\x0d\0\x01\x02");
        // Once the plan is open, the bytes are no longer held: the next plan reads the file.
        let held = local_component(&resolver, dir.path());
        assert!(Arc::ptr_eq(&held.bytes, &replaced.bytes));
        resolver.forget_read();
        assert!(!Arc::ptr_eq(
            &local_component(&resolver, dir.path()).bytes,
            &held.bytes
        ));
    }

    #[test]
    fn a_component_written_a_moment_ago_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
        let resolver = Resolver::new(Vec::new());
        let first = local_component(&resolver, dir.path());
        let again = local_component(&resolver, dir.path());
        assert!(!Arc::ptr_eq(&first.bytes, &again.bytes));
        assert_eq!(first.sha256, again.sha256);
    }

    #[test]
    fn local_files_resolve_relative_to_the_base() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
        std::fs::write(dir.path().join("text"), b"hello").unwrap();
        let exe = dir.path().join("plugin");
        std::fs::write(&exe, b"#!/bin/sh\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let resolver = Resolver::new(Vec::new());
        assert!(matches!(
            resolver.resolve(RegistryKind::Local, "p.wasm", dir.path()),
            Ok(Resolved::Component(_))
        ));
        assert!(matches!(
            resolver.resolve(RegistryKind::Local, "plugin", dir.path()),
            Ok(Resolved::Executable(p)) if p == exe
        ));
        let err = resolver
            .resolve(RegistryKind::Local, "text", dir.path())
            .unwrap_err();
        assert!(matches!(err, ResolveError::NotAPlugin(_)), "{err}");
        // An executable named as a component is refused, never run.
        let posing = dir.path().join("community-plugin.wasm");
        std::fs::copy(&exe, &posing).unwrap();
        let err = resolver
            .resolve(RegistryKind::Local, "community-plugin.wasm", dir.path())
            .unwrap_err();
        assert!(matches!(err, ResolveError::NotAComponent(_)), "{err}");
        let err = resolver
            .resolve(RegistryKind::Local, "missing.wasm", dir.path())
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read plugin `missing.wasm`:"),
            "{err}"
        );
    }
}
