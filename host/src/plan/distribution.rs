//! Getting a `registry: oci` plugin: the lock says which manifest, the store holds its bytes (or
//! the registry is asked and the store filled), the signature policy is checked against the
//! manifest digest before the component is even downloaded, and the component handed on is
//! bytes whose sha256 was just computed again. Nothing here compiles or runs anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use quarry_registry::lock::{LockError, LockFile, LockedPlugin, SignatureState};
use quarry_registry::oci::{
    COSIGN_SIGNATURE_ANNOTATION, Client, Descriptor, Manifest, OciError, RegistrySettings,
    Repository, SignatureBlob, Version, signature_layers,
};
use quarry_registry::signature::{self, PublicKey, SignatureError};
use quarry_registry::store::{Store, StoreError, StoredRef};
use quarry_registry::{Artifact, Digest};

use crate::spec::{SpecError, UserConfig, Verify};

/// How the registry may be used, from the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    /// `--offline`: the lock and the store only; no network.
    pub offline: bool,
    /// `--locked`: refuse to change the lock.
    pub locked: bool,
    /// `quarry plugin update`: resolve every reference again, ignoring the lock.
    pub update: bool,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Sets the mode of this process (once, from the command line).
pub fn set_mode(mode: Mode) {
    let _ = MODE.set(mode);
}

/// Why an OCI plugin could not be had. Each names the reference and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The registry said no, or sent bad bytes.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The store could not be read or written, or held a changed file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A required signature is missing or wrong.
    #[error("`{reference}`: {source}")]
    Signature {
        /// `host/repo@digest`.
        reference: String,
        /// Why.
        source: SignatureError,
    },
    /// A key of the policy cannot be read.
    #[error("`verify`: {0}")]
    Key(String),
    /// Offline, and something is not in the store.
    #[error("{0}")]
    Offline(String),
    /// `--locked`, and the lock would change.
    #[error("{0}")]
    Locked(String),
    /// Quarry's config file is wrong.
    #[error("{0}")]
    Config(SpecError),
    /// The lock file cannot be read or written.
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// What a fetch found.
pub struct Fetched {
    pub artifact: Artifact,
    pub repository: Repository,
    pub manifest: Digest,
    pub tag: Option<String>,
    pub signature: SignatureState,
}

struct LockState {
    file: LockFile,
    changed: bool,
    /// `path version: old -> new` for every reference whose digest moved.
    moves: Vec<String>,
}

/// The store, the lock, the registry settings and the mode: everything `registry: oci` needs.
pub struct Distribution {
    store: Store,
    mode: Mode,
    config: OnceLock<Result<UserConfig, SpecError>>,
    lock_path: Option<PathBuf>,
    lock: Mutex<LockState>,
    clients: Mutex<HashMap<String, Arc<Client>>>,
}

fn now_rfc3339() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    crate::sync::summary::rfc3339(micros)
}

impl Distribution {
    /// The store in `QUARRY_PLUGIN_STORE`, else under `cache_dir/oci` (else a temporary one),
    /// with no lock.
    pub fn new(cache_dir: Option<&Path>) -> Self {
        let root = std::env::var_os("QUARRY_PLUGIN_STORE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| cache_dir.map(|d| d.join("oci")))
            .unwrap_or_else(|| {
                // SAFETY: getuid has no preconditions and cannot fail.
                let uid = unsafe { libc::getuid() };
                std::env::temp_dir().join(format!("quarry-oci-{uid}"))
            });
        Distribution {
            store: Store::new(root),
            mode: MODE.get().copied().unwrap_or_default(),
            config: OnceLock::new(),
            lock_path: None,
            lock: Mutex::new(LockState {
                file: LockFile::default(),
                changed: false,
                moves: Vec::new(),
            }),
            clients: Mutex::default(),
        }
    }

    /// Uses the lock file at `path` (read now; an absent one is empty).
    pub fn use_lock(&mut self, path: PathBuf) -> Result<(), LockError> {
        let file = LockFile::load(&path)?;
        self.lock = Mutex::new(LockState {
            file,
            changed: false,
            moves: Vec::new(),
        });
        self.lock_path = Some(path);
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// The lock file in use.
    pub fn lock_path(&self) -> Option<&Path> {
        self.lock_path.as_deref()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LockState> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the lock if anything in it changed (never under `--locked`); returns whether
    /// it wrote.
    pub fn save_lock(&self) -> Result<bool, LockError> {
        let mut state = self.state();
        match &self.lock_path {
            Some(path) if state.changed && !self.mode.locked => {
                state.file.save(path)?;
                state.changed = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The references whose digest moved since the lock was written (`quarry plugin update`).
    pub fn moves(&self) -> Vec<String> {
        self.state().moves.clone()
    }

    /// The OCI repository a CloudQuery Hub path (`TEAM/NAME`) is mirrored at, if the config
    /// file names a mirror (`cloudquery_mirror`).
    pub fn cloudquery_mirror(&self, path: &str) -> Result<Option<String>, FetchError> {
        Ok(self
            .config()?
            .cloudquery_mirror
            .as_deref()
            .map(|mirror| format!("{}/{path}", mirror.trim_end_matches('/'))))
    }

    fn config(&self) -> Result<&UserConfig, FetchError> {
        self.config
            .get_or_init(UserConfig::load)
            .as_ref()
            .map_err(|e| FetchError::Config(e.clone()))
    }

    /// The client for `repository`'s registry, made once.
    pub fn client(&self, repository: &Repository) -> Result<Arc<Client>, FetchError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&repository.registry) {
            return Ok(client.clone());
        }
        let settings = self
            .config()?
            .registries
            .get(&repository.registry)
            .cloned()
            .unwrap_or_else(RegistrySettings::default);
        let client = Arc::new(Client::new(repository, &settings)?);
        clients.insert(repository.registry.clone(), client.clone());
        Ok(client)
    }

    /// The keys a plugin must be signed by: its own `verify:`, else the config file's.
    fn trusted_keys(
        &self,
        verify: Option<&Verify>,
        base: &Path,
    ) -> Result<Vec<PublicKey>, FetchError> {
        let config = self.config()?;
        let Some(verify) = verify.or(config.verify.as_ref()) else {
            return Ok(Vec::new());
        };
        verify
            .keys
            .iter()
            .map(|key| {
                if key.contains("-----BEGIN") {
                    return PublicKey::from_pem(key, "inline key")
                        .map_err(|e| FetchError::Key(e.to_string()));
                }
                let path = base.join(key);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| FetchError::Key(format!("cannot read {}: {e}", path.display())))?;
                PublicKey::from_pem(&text, key).map_err(|e| FetchError::Key(e.to_string()))
            })
            .collect()
    }

    /// The blob `digest` from the store, or from the registry into the store. A stored blob
    /// that changed on disk is reported and fetched again (offline: refused).
    async fn blob(
        &self,
        repository: &Repository,
        digest: &Digest,
        descriptor: Option<&Descriptor>,
    ) -> Result<Vec<u8>, FetchError> {
        match self.store.get(digest) {
            Ok(Some(bytes)) => return Ok(bytes),
            Ok(None) => {}
            Err(StoreError::Corrupt(corrupt)) if !self.mode.offline => {
                tracing::warn!("{corrupt}; fetching it again from {}", repository.registry);
            }
            Err(StoreError::Corrupt(corrupt)) => {
                return Err(FetchError::Offline(format!(
                    "{corrupt}; --offline forbids fetching it again: run without --offline"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if self.mode.offline {
            return Err(FetchError::Offline(format!(
                "`{repository}@{digest}` is not in the plugin store ({}) and --offline forbids fetching it; run `quarry plugin install <specs>` while online",
                self.store.root().display()
            )));
        }
        let client = self.client(repository)?;
        let bytes = match descriptor {
            Some(descriptor) => client.blob(repository, descriptor).await?,
            None => client.manifest(repository, digest).await?,
        };
        self.store.put(&bytes)?;
        Ok(bytes)
    }

    /// The signatures beside manifest `digest`: those in the store when one of them is by a
    /// trusted key, else the registry's (kept in the store for offline runs).
    async fn signatures(
        &self,
        repository: &Repository,
        digest: &Digest,
        trusted: &[PublicKey],
    ) -> Result<Vec<SignatureBlob>, FetchError> {
        let stored = self.stored_signatures(repository, digest);
        if self.mode.offline
            || signature::verify(trusted, &stored, &repository.to_string(), digest).is_ok()
        {
            return Ok(stored);
        }
        let client = self.client(repository)?;
        let Some((manifest, blobs)) = client.signatures(repository, digest).await? else {
            return Ok(Vec::new());
        };
        for blob in &blobs {
            self.store.put(&blob.payload)?;
        }
        let signatures = self.store.put(&manifest)?;
        self.store.record_signatures(digest, &signatures)?;
        Ok(blobs)
    }

    fn stored_signatures(&self, repository: &Repository, digest: &Digest) -> Vec<SignatureBlob> {
        let Some(manifest) = self
            .store
            .recorded_signatures(digest)
            .and_then(|d| self.store.get(&d).ok().flatten())
            .and_then(|bytes| Manifest::parse(&bytes, &repository.to_string()).ok())
        else {
            return Vec::new();
        };
        signature_layers(&manifest)
            .filter_map(|layer| {
                let payload = self.store.get(&Digest::parse(&layer.digest).ok()?).ok()??;
                Some(SignatureBlob {
                    payload,
                    signature: layer.annotations[COSIGN_SIGNATURE_ANNOTATION].clone(),
                })
            })
            .collect()
    }

    /// Which manifest `path`/`version` means now: the lock's, else the store's record (offline),
    /// else the registry's.
    async fn pin(
        &self,
        repository: &Repository,
        path: &str,
        written: &str,
        version: &Version,
    ) -> Result<(Option<String>, Digest), FetchError> {
        // A digest is exact: no lock entry can stand in for it.
        if let Version::Digest(digest) = version {
            return Ok((None, digest.clone()));
        }
        if !self.mode.update
            && let Some(entry) = self.state().file.get(path, written)
        {
            return Ok((entry.tag.clone(), entry.manifest.clone()));
        }
        let reference = if written.is_empty() {
            path.to_string()
        } else {
            format!("{path} version {written}")
        };
        if self.mode.locked && !self.mode.update && self.lock_path.is_some() {
            return Err(FetchError::Locked(format!(
                "quarry.lock has no entry for `{reference}` and --locked forbids adding one; run `quarry plugin install <specs>` and commit quarry.lock"
            )));
        }
        if self.mode.offline {
            let tag = match version {
                Version::Latest => "latest",
                Version::Tag(tag) => tag.as_str(),
                _ => {
                    return Err(FetchError::Offline(format!(
                        "`{reference}` is not in quarry.lock, and a version requirement needs the registry's tags, which --offline forbids asking for; run `quarry plugin install <specs>` while online"
                    )));
                }
            };
            return self
                .store
                .recorded(&repository.to_string(), tag)
                .map(|r| (Some(r.tag), r.manifest))
                .ok_or_else(|| {
                    FetchError::Offline(format!(
                        "`{reference}` is neither in quarry.lock nor in the plugin store, and --offline forbids asking the registry; run `quarry plugin install <specs>` while online"
                    ))
                });
        }
        let client = self.client(repository)?;
        Ok(client.resolve(repository, version).await?)
    }

    /// Gets the component `path` at `version`, checked against the signature policy, from the
    /// store or the registry, and pins it in the lock.
    pub async fn fetch(
        &self,
        path: &str,
        version: Option<&str>,
        verify: Option<&Verify>,
        base: &Path,
    ) -> Result<Fetched, FetchError> {
        let repository = Repository::parse(path)?;
        let written = version.unwrap_or_default().trim();
        let parsed = Version::parse(version)?;
        let trusted = self.trusted_keys(verify, base)?;
        let (tag, manifest_digest) = self.pin(&repository, path, written, &parsed).await?;
        let shown = format!("{repository}@{manifest_digest}");
        let manifest_bytes = self.blob(&repository, &manifest_digest, None).await?;
        let manifest = Manifest::parse(&manifest_bytes, &shown)?;
        let layer = manifest.component(&shown)?.clone();
        // The policy is checked on the manifest digest, before the component is downloaded.
        let signature = if trusted.is_empty() {
            SignatureState::NotRequired
        } else {
            let blobs = self
                .signatures(&repository, &manifest_digest, &trusted)
                .await?;
            let key =
                signature::verify(&trusted, &blobs, &repository.to_string(), &manifest_digest)
                    .map_err(|source| FetchError::Signature {
                        reference: shown.clone(),
                        source,
                    })?;
            SignatureState::Verified {
                key: key.fingerprint(),
            }
        };
        let component = Digest::parse(&layer.digest).map_err(OciError::from)?;
        let bytes = self.blob(&repository, &component, Some(&layer)).await?;
        let record = StoredRef {
            repository: repository.to_string(),
            tag: tag.clone().unwrap_or_else(|| manifest_digest.to_string()),
            manifest: manifest_digest.clone(),
            component: component.clone(),
            size: layer.size,
            pulled: now_rfc3339(),
        };
        if let Err(e) = self.store.record(&record) {
            tracing::warn!("cannot record the pull of {shown}: {e}");
        }
        self.pin_in_lock(LockedPlugin {
            path: path.to_string(),
            version: written.to_string(),
            tag: tag.clone(),
            manifest: manifest_digest.clone(),
            component: component.clone(),
            size: layer.size,
            signature: signature.clone(),
        })?;
        Ok(Fetched {
            artifact: Artifact {
                path: self.store.blob_path(&component),
                sha256: component.hex().to_string(),
                bytes: bytes.into(),
            },
            repository,
            manifest: manifest_digest,
            tag,
            signature,
        })
    }

    /// Records `entry` in the lock; under `--locked`, any change is an error naming what changed.
    /// Without a lock file (`plugin pull`, `serve`, `inspect`) there is nothing to record.
    fn pin_in_lock(&self, entry: LockedPlugin) -> Result<(), FetchError> {
        if self.lock_path.is_none() {
            return Ok(());
        }
        let mut state = self.state();
        let previous = state.file.get(&entry.path, &entry.version).cloned();
        let reference = if entry.version.is_empty() {
            format!("`{}`", entry.path)
        } else {
            format!("`{}` version `{}`", entry.path, entry.version)
        };
        let change = match &previous {
            None if self.mode.offline => {
                // Pinned from the store's record, not from the registry: not lock material.
                return Ok(());
            }
            None => {
                if self.mode.locked {
                    return Err(FetchError::Locked(format!(
                        "quarry.lock has no entry for {reference} and --locked forbids adding one; run `quarry plugin install <specs>` and commit quarry.lock"
                    )));
                }
                None
            }
            Some(previous) if *previous == entry => return Ok(()),
            Some(previous) if previous.manifest == entry.manifest => {
                if previous.component != entry.component || previous.size != entry.size {
                    return Err(FetchError::Locked(format!(
                        "quarry.lock says {reference} (manifest {}) is component {} of {} bytes, but that manifest names component {} of {} bytes; the lock was edited: restore it, or delete the entry and run `quarry plugin install <specs>`",
                        previous.manifest,
                        previous.component,
                        previous.size,
                        entry.component,
                        entry.size
                    )));
                }
                Some(format!(
                    "{reference}: its signature check changed from {} to {}",
                    describe(&previous.signature),
                    describe(&entry.signature)
                ))
            }
            Some(previous) => {
                let how = match (&previous.tag, &entry.tag) {
                    (Some(old), Some(new)) if old == new => format!(" (tag `{new}` moved)"),
                    (Some(old), Some(new)) => {
                        format!(" (it now resolves to tag `{new}`, was `{old}`)")
                    }
                    _ => String::new(),
                };
                let moved = format!(
                    "{reference}: quarry.lock has {}, the registry now has {}{how}",
                    previous.manifest, entry.manifest
                );
                state.moves.push(moved.clone());
                Some(moved)
            }
        };
        if self.mode.locked {
            if let Some(change) = change {
                state.moves.clear();
                return Err(FetchError::Locked(format!(
                    "{change}; --locked forbids changing quarry.lock (run `quarry plugin update` to take the new state)"
                )));
            }
            return Ok(());
        }
        state.file.put(entry);
        state.changed = true;
        Ok(())
    }
}

fn describe(state: &SignatureState) -> String {
    match state {
        SignatureState::NotRequired => "not required".into(),
        SignatureState::Verified { key } => format!("verified by {key}"),
    }
}
