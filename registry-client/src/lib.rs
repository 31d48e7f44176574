//! Resolves a plugin reference — `(registry, path, version)` from a spec — to a local artifact
//! whose bytes and sha256 are in hand, ready to be verified and compiled.
//!
//! Registries:
//! - `quarry`: the first-party plugins shipped with the CLI, found on a search path (see
//!   [`Resolver::from_env`]), so that they work offline out of the box;
//! - `local`: a component file on disk;
//! - `grpc` and `oci` are recognised and refused with a clear message until they are built.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Where a plugin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    /// First-party plugins shipped with the CLI.
    Quarry,
    /// A file on disk.
    Local,
    /// A running plugin at a network address.
    Grpc,
    /// An OCI artifact.
    Oci,
}

/// A resolved plugin: the file it came from, its bytes and their sha256.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The file the bytes were read from.
    pub path: PathBuf,
    /// The component.
    pub bytes: Vec<u8>,
    /// Lowercase hex sha256 of `bytes`.
    pub sha256: String,
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
    /// A registry kind that is not built yet.
    #[error(
        "registry `{0}` is not supported yet; use `registry: local` with a .wasm file or `registry: quarry`"
    )]
    Unsupported(&'static str),
}

/// The first-party plugins: `quarry/<name>` is built from the crate `quarry-plugin-<name>`.
pub const FIRST_PARTY: &[&str] = &["file", "postgresql", "test"];

/// Resolves plugin references against a search path of first-party plugin directories.
#[derive(Debug, Clone)]
pub struct Resolver {
    search_path: Vec<PathBuf>,
}

impl Resolver {
    /// A resolver that looks for first-party plugins in `search_path`, in order.
    pub fn new(search_path: Vec<PathBuf>) -> Self {
        Resolver { search_path }
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
    ) -> Result<Artifact, ResolveError> {
        match registry {
            RegistryKind::Quarry => self.first_party(path),
            RegistryKind::Local => read(&base.join(path), path),
            RegistryKind::Grpc => Err(ResolveError::Unsupported("grpc")),
            RegistryKind::Oci => Err(ResolveError::Unsupported("oci")),
        }
    }

    fn first_party(&self, path: &str) -> Result<Artifact, ResolveError> {
        let name = match path.split_once('/') {
            Some(("quarry", name)) if !name.is_empty() && !name.contains('/') => name,
            Some(_) => return Err(ResolveError::BadPath(path.into())),
            None => path,
        };
        if !FIRST_PARTY.contains(&name) {
            let known = FIRST_PARTY
                .iter()
                .map(|n| format!("quarry/{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ResolveError::UnknownPlugin {
                path: path.into(),
                known,
            });
        }
        let file = format!("quarry_plugin_{name}.wasm");
        match self
            .search_path
            .iter()
            .map(|d| d.join(&file))
            .find(|p| p.is_file())
        {
            Some(found) => read(&found, path),
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
}

fn read(file: &Path, as_written: &str) -> Result<Artifact, ResolveError> {
    let bytes = std::fs::read(file).map_err(|source| ResolveError::Unreadable {
        path: as_written.into(),
        source,
    })?;
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Artifact {
        path: file.to_path_buf(),
        bytes,
        sha256,
    })
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
            let artifact = resolver
                .resolve(RegistryKind::Quarry, path, Path::new("."))
                .unwrap();
            assert_eq!(artifact.bytes, b"\0asm");
            assert_eq!(artifact.sha256.len(), 64);
        }
        let err = resolver
            .resolve(RegistryKind::Quarry, "quarry/nope", Path::new("."))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown plugin `quarry/nope`: the first-party plugins are quarry/file, quarry/postgresql, quarry/test"
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
    fn the_default_search_path_follows_the_cargo_layout() {
        let resolver = Resolver::from_env(Some(Path::new("/t/target/debug/quarry")));
        let dirs = resolver.search_path();
        assert!(dirs.ends_with(&[
            PathBuf::from("/t/target/debug/plugins"),
            PathBuf::from("/t/target/wasm32-wasip2/debug")
        ]));
    }

    #[test]
    fn local_files_resolve_relative_to_the_base() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.wasm"), b"x").unwrap();
        let resolver = Resolver::new(Vec::new());
        assert!(
            resolver
                .resolve(RegistryKind::Local, "p.wasm", dir.path())
                .is_ok()
        );
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
