//! What a plugin may touch, and how the host holds it to that. Deny by default: a plugin gets no
//! directory, no environment variable, no socket and no more memory or time than the user granted
//! in its spec's `permissions:`, and its standard output and error go to the host log, capped.

mod http;
pub mod lookup;
mod network;
mod output;

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

pub use http::{OutboundHttp, link_outgoing_handler, non_public};
pub use network::{HostGrant, HostPattern, SocketPolicy};
pub use output::PluginOutput;

use crate::spec::{Access, Permissions};

/// The memory a plugin gets when its spec grants none: enough for large batches, far from the
/// 4 GiB a 32-bit guest could otherwise take.
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// The first thing the sandbox denied a plugin (a request, a connection, a lookup), shared by
/// its HTTP hooks, its socket policy and its name lookups, and reported with the plugin's error.
#[derive(Debug, Clone, Default)]
pub struct Denials(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl Denials {
    /// Logs a denial and keeps it if it is the first since the last `take`.
    pub fn record(&self, plugin: &str, message: String) {
        tracing::warn!(plugin, "{message}");
        if let Ok(mut first) = self.0.lock() {
            first.get_or_insert(message);
        }
    }

    pub fn take(&self) -> Option<String> {
        self.0.lock().ok()?.take()
    }
}

/// The most host handles (open files, sockets, streams, pollables, HTTP requests) a plugin may
/// hold at once: each open file or socket is a descriptor of the quarry process, and the process
/// has a limit for all of them together.
pub const MAX_HANDLES: usize = 4096;

/// The wall-clock budget of a plugin's whole run in a sync when its spec sets none: far longer
/// than any sync this tool has seen, but finite, so a plugin that hangs cannot hold a scheduled
/// run forever.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How much of a plugin's standard output and error is logged before the rest is dropped.
pub const OUTPUT_CAP: usize = 1 << 20;

/// One directory a plugin may use, under the name the plugin sees it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The path as the user wrote it, normalised: what the plugin opens paths under.
    pub guest: String,
    pub host: PathBuf,
    pub access: Access,
}

/// Everything a plugin instance was granted, resolved against the host.
#[derive(Debug, Clone)]
pub struct Grants {
    pub dirs: Vec<DirGrant>,
    /// Granted variables that are set on the host, with their values.
    pub env: Vec<(String, String)>,
    pub network: Vec<HostGrant>,
    pub memory: u64,
    pub timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("cannot grant directory `{path}`: {reason}")]
    Directory { path: String, reason: String },
    #[error(
        "cannot grant directory `{path}`: it contains {what} ({protected}), which a plugin must never reach; grant a directory that does not contain it{hint}"
    )]
    Protected {
        path: String,
        what: &'static str,
        protected: String,
        hint: &'static str,
    },
    #[error("`permissions.network` entry `{entry}`: {reason}")]
    Network { entry: String, reason: String },
}

impl Grants {
    /// Nothing at all: no files, no env, no network, the default memory, no timeout.
    pub fn none() -> Self {
        Grants {
            dirs: Vec::new(),
            env: Vec::new(),
            network: Vec::new(),
            memory: DEFAULT_MEMORY,
            timeout: None,
        }
    }

    /// Resolves a spec's permissions against the working directory `cwd`. Directories granted
    /// for writing are created if missing; directories granted for reading must exist.
    pub fn resolve(permissions: &Permissions, cwd: &Path) -> Result<Self, GrantError> {
        let mut dirs = Vec::new();
        for (path, access) in &permissions.files {
            let guest = normalise(path);
            let host = cwd.join(&guest);
            let fail = |reason: String| GrantError::Directory {
                path: path.clone(),
                reason,
            };
            // Checked before anything is created: `create_dir_all` would follow a link too.
            if let Some((link, target)) = symlink_on_the_way(cwd, &guest) {
                return Err(fail(format!(
                    "`{}` is a symbolic link (to `{}`); grants do not follow links, because a plugin \
                     that could write there may have planted it: grant the directory it points \
                     to by its own path (and use that path in the plugin's spec)",
                    link.display(),
                    target.display()
                )));
            }
            if *access == Access::Write {
                std::fs::create_dir_all(&host).map_err(|e| fail(e.to_string()))?;
            }
            let host = host.canonicalize().map_err(|e| fail(e.to_string()))?;
            if !host.is_dir() {
                return Err(fail("it is not a directory".into()));
            }
            dirs.push(DirGrant {
                guest,
                host,
                access: *access,
            });
        }
        let env = permissions
            .env
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|value| (name.clone(), value)))
            .collect();
        let network = permissions
            .network
            .iter()
            .map(|entry| {
                HostGrant::parse(entry).map_err(|reason| GrantError::Network {
                    entry: entry.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Grants {
            dirs,
            env,
            network,
            memory: permissions.memory.unwrap_or(DEFAULT_MEMORY),
            timeout: permissions.timeout,
        })
    }

    /// Refuses a grant that reaches Quarry's own files: the compile cache (its entries run as
    /// native code, and its key authenticates them) with any access, and a directory plugins are
    /// loaded from with write access (a plugin could replace another).
    pub fn refuse_reaching(
        &self,
        cache: Option<&Path>,
        plugin_dirs: &[PathBuf],
    ) -> Result<(), GrantError> {
        let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        for dir in &self.dirs {
            let refused = |what, protected: &Path, hint| GrantError::Protected {
                path: dir.guest.clone(),
                what,
                protected: protected.display().to_string(),
                hint,
            };
            if let Some(cache) = cache
                && real(cache).starts_with(&dir.host)
            {
                return Err(refused(
                    "Quarry's compile cache",
                    cache,
                    ", or move the cache with QUARRY_CACHE_DIR",
                ));
            }
            if dir.access == Access::Write
                && let Some(plugins) = plugin_dirs
                    .iter()
                    .find(|p| p.exists() && real(p).starts_with(&dir.host))
            {
                return Err(refused("plugins Quarry loads", plugins, ""));
            }
        }
        Ok(())
    }

    /// The WASI context that gives a plugin exactly these grants.
    pub fn wasi(
        &self,
        stdout: PluginOutput,
        stderr: PluginOutput,
        plugin: &str,
        denials: Denials,
    ) -> wasmtime::Result<WasiCtx> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout).stderr(stderr);
        for (name, value) in &self.env {
            wasi.env(name, value);
        }
        for dir in &self.dirs {
            let perms = match dir.access {
                Access::Read => FsPerms::ReadOnly,
                Access::Write => FsPerms::ReadWrite,
            };
            // Resolved when granted; a directory replaced by a link since (by a plugin of an
            // earlier instance, say, under `quarry serve`) is not opened.
            if dir.host.canonicalize().ok().as_ref() != Some(&dir.host) {
                wasmtime::bail!(
                    "the granted directory {} changed since it was granted (it is now a link, or gone); grant it again",
                    dir.host.display()
                );
            }
            wasi.preopened_dir(&dir.host, &dir.guest, perms)?;
        }
        // TCP connections to granted addresses only; no UDP, no listening. Name lookups are
        // allowed with any network grant, and `lookup.rs` limits them to granted names.
        let policy =
            std::sync::Arc::new(SocketPolicy::new(&self.network).reporting(plugin, denials));
        // TCP and lookups are on even with no grant: the policies refuse every address and
        // name then, and record why, so the plugin's error names the grant that would allow it.
        wasi.allow_tcp(true)
            .allow_udp(false)
            .allow_ip_name_lookup(true);
        wasi.socket_addr_check(move |addr, used_for| {
            let policy = policy.clone();
            Box::pin(async move { policy.allows(addr, used_for).await })
        });
        Ok(wasi.build())
    }
}

/// `./out/` and `out` name the same directory; the plugin resolves paths by prefix, so grants use
/// the shortest spelling (`.` for the working directory itself).
/// The first symbolic link on the way to `guest` (a normalised grant path), from `cwd` for a
/// relative one or from `/`, with where it points.
fn symlink_on_the_way(cwd: &Path, guest: &str) -> Option<(PathBuf, PathBuf)> {
    let mut at = if guest.starts_with('/') {
        PathBuf::from("/")
    } else {
        cwd.to_path_buf()
    };
    for part in Path::new(guest).components() {
        match part {
            Component::Normal(p) => at.push(p),
            Component::ParentDir => {
                at.pop();
                continue;
            }
            _ => continue,
        }
        if let Ok(target) = std::fs::read_link(&at) {
            // A link the system made (root's, such as /var/run) is not a plugin's: a plugin's
            // files belong to the user running quarry.
            use std::os::unix::fs::MetadataExt;
            if std::fs::symlink_metadata(&at).is_ok_and(|m| m.uid() == 0) && libc_uid() != 0 {
                continue;
            }
            return Some((at, target));
        }
    }
    None
}

fn libc_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn normalise(path: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let absolute = path.starts_with('/');
    for part in Path::new(path).components() {
        match part {
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => parts.push("..".into()),
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Caps a store's linear memory and remembers a refused request, so that the failure the plugin
/// reports (usually a trap from its allocator) can be explained as the limit it was.
#[derive(Debug)]
pub struct MemoryCap {
    pub limit: u64,
    /// The total the plugin asked for when it was refused.
    pub refused: Option<u64>,
    /// Bytes of every linear memory of the store together: the cap is store-wide, so a
    /// component with many memories (or many core instances) gets no more than one would.
    used: u64,
    /// Table elements of every table of the store together.
    elements: u64,
}

/// The most core instances, memories and tables one plugin's store may have: far above what a
/// compiled plugin needs (a handful), far below wasmtime's default of 10,000 each.
const MAX_INSTANCES: usize = 256;
const MAX_MEMORIES: usize = 32;
const MAX_TABLES: usize = 256;
/// Table elements across every table of a store.
const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

impl MemoryCap {
    pub fn new(limit: u64) -> Self {
        MemoryCap {
            limit,
            refused: None,
            used: 0,
            elements: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // wasmtime checks a memory's own maximum after asking here: growth it will refuse
        // anyway must not be counted.
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let total = self
            .used
            .saturating_add(desired.saturating_sub(current) as u64);
        if total > self.limit {
            self.refused = Some(total);
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.elements + (desired.saturating_sub(current)) as u64;
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// `512MiB` style, for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    match bytes {
        b if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{b}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16, hole 5: the memory cap holds for all of a store's memories together.
    #[test]
    fn the_memory_cap_is_for_all_memories_together() {
        use wasmtime::ResourceLimiter;
        const MIB: usize = 1 << 20;
        let mut cap = MemoryCap::new(256 << 20);
        assert!(cap.memory_growing(0, 200 * MIB, None).unwrap());
        // A second memory of 200 MiB would pass a per-memory check; together they do not.
        assert!(!cap.memory_growing(0, 200 * MIB, None).unwrap());
        assert_eq!(cap.refused, Some(400 << 20));
        // Growing the first within what is left is fine.
        assert!(cap.memory_growing(200 * MIB, 250 * MIB, None).unwrap());
        assert!(!cap.memory_growing(250 * MIB, 257 * MIB, None).unwrap());
        assert!(cap.instances() < 10_000 && cap.memories() < 10_000);
        // Growth past a memory's own maximum fails in wasmtime anyway: it is not counted.
        let mut cap = MemoryCap::new(256 << 20);
        assert!(!cap.memory_growing(0, 200 * MIB, Some(100 * MIB)).unwrap());
        assert!(cap.memory_growing(0, 250 * MIB, None).unwrap());
    }

    #[test]
    fn grants_do_not_follow_symbolic_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out/x")).unwrap();
        for access in [Access::Read, Access::Write] {
            let permissions = Permissions {
                files: [("./out/x/sub".to_string(), access)].into_iter().collect(),
                ..Permissions::default()
            };
            let err = Grants::resolve(&permissions, dir.path())
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("is a symbolic link"), "{err}");
            assert!(err.contains(&outside.path().display().to_string()), "{err}");
        }
        assert!(
            !outside.path().join("sub").exists(),
            "nothing was created through the link"
        );
        let direct = Permissions {
            files: [("./out".to_string(), Access::Write)].into_iter().collect(),
            ..Permissions::default()
        };
        assert!(Grants::resolve(&direct, dir.path()).is_ok());
    }

    /// A granted directory replaced by a link after it was granted (a plugin of an earlier
    /// instance under `quarry serve`, say) is not opened for the next instance.
    #[test]
    fn a_granted_directory_replaced_by_a_link_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let permissions = Permissions {
            files: vec![("./data".to_string(), Access::Write)],
            ..Permissions::default()
        };
        let grants = Grants::resolve(&permissions, dir.path()).unwrap();
        let output = || PluginOutput::new("p", "stdout");
        assert!(
            grants
                .wasi(output(), output(), "p", Denials::default())
                .is_ok()
        );
        std::fs::remove_dir(dir.path().join("data")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("data")).unwrap();
        let err = grants
            .wasi(output(), output(), "p", Denials::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("changed since it was granted"), "{err}");
    }

    #[test]
    fn grant_paths_are_normalised() {
        assert_eq!(normalise("./out"), "out");
        assert_eq!(normalise("out/"), "out");
        assert_eq!(normalise("./a/./b"), "a/b");
        assert_eq!(normalise("."), ".");
        assert_eq!(normalise("./"), ".");
        assert_eq!(normalise("/tmp/x"), "/tmp/x");
        assert_eq!(normalise("../up"), "../up");
    }

    #[test]
    fn byte_sizes_read_as_written() {
        assert_eq!(human_bytes(512 << 20), "512MiB");
        assert_eq!(human_bytes(1 << 30), "1GiB");
        assert_eq!(human_bytes(1_500_000), "1.4MiB");
    }

    #[test]
    fn write_grants_create_their_directory_and_read_grants_must_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let permissions = Permissions {
            files: vec![("./out/nested".into(), Access::Write)],
            ..Permissions::default()
        };
        let grants = Grants::resolve(&permissions, tmp.path()).unwrap();
        assert!(tmp.path().join("out/nested").is_dir());
        assert_eq!(grants.dirs[0].guest, "out/nested");
        let missing = Permissions {
            files: vec![("in".into(), Access::Read)],
            ..Permissions::default()
        };
        let err = Grants::resolve(&missing, tmp.path()).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot grant directory `in`:"),
            "{err}"
        );
    }
}
