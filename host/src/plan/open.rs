//! Opening a plugin: one function for every transport (a wasm component started in its sandbox,
//! a native executable spawned, a running plugin dialed), and the checks every plugin of a spec
//! passes before it is used: its kind, its version, its `spec:` against its schema, `init`.

use std::path::{Path, PathBuf};

use quarry_registry::{RegistryKind, ResolveError, Resolved};

use super::{Environment, RunError};
use crate::runtime::grpc::GrpcPlugin;
use crate::runtime::{AnyPlugin, ErrorKind, PluginError};
use crate::sandbox::Grants;
use crate::spec::{
    DestinationSpec, Location, Permissions, PluginSpec, Registry, SourceSpec, SpecError,
    TransformerSpec, Verify,
};

/// One plugin reference from a spec document.
#[derive(Clone, Copy)]
pub struct PluginRef<'a> {
    pub name: &'a str,
    pub registry: Registry,
    pub path: &'a str,
    pub version: Option<&'a str>,
    pub permissions: &'a Permissions,
    /// `native: true`: the spec consents to run a native executable unsandboxed.
    pub native: bool,
    pub verify: Option<&'a Verify>,
    pub spec: &'a PluginSpec,
    pub at: &'a Location,
}

/// Sources, destinations and transformers name their plugin with the same fields.
macro_rules! plugin_ref_from {
    ($($document:ty),+) => {$(
        impl<'a> From<&'a $document> for PluginRef<'a> {
            fn from(s: &'a $document) -> Self {
                PluginRef {
                    name: &s.name,
                    registry: s.registry,
                    path: &s.path,
                    version: s.version.as_deref(),
                    permissions: &s.permissions,
                    native: s.native,
                    verify: s.verify.as_ref(),
                    spec: &s.spec,
                    at: &s.at,
                }
            }
        }
    )+};
}

plugin_ref_from!(SourceSpec, DestinationSpec, TransformerSpec);

/// The role a spec document gives a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Destination,
    Transformer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
            Role::Transformer => "transformer",
        }
    }
}

/// Where an opened plugin came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A component, by the sha256 of its bytes.
    Component {
        digest: String,
    },
    Executable(PathBuf),
    Address(String),
}

impl Origin {
    /// Whether the plugin runs in the sandbox (only components do).
    pub fn sandboxed(&self) -> bool {
        matches!(self, Origin::Component { .. })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Component { digest } => write!(f, "component sha256:{digest}"),
            Origin::Executable(path) => write!(f, "executable {}", path.display()),
            Origin::Address(address) => write!(f, "address {address}"),
        }
    }
}

/// A plugin that is running but not yet initialised.
pub struct Opened {
    pub plugin: Box<dyn AnyPlugin>,
    pub origin: Origin,
}

/// Why a plugin could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The file is not a component for this contract (the spec's mistake): the message says why.
    Config(String),
    /// The grants are wrong: the message says which and why.
    Grants(String),
    /// The plugin failed while starting.
    Plugin(PluginError),
}

impl From<PluginError> for OpenError {
    fn from(e: PluginError) -> Self {
        OpenError::Plugin(e)
    }
}

/// Opens a resolved plugin, whatever its transport. A component runs with the grants of
/// `permissions`; a native plugin runs with the user's own rights.
pub async fn open(
    env: &Environment,
    name: &str,
    resolved: Resolved,
    permissions: &Permissions,
) -> Result<Opened, OpenError> {
    Ok(match resolved {
        Resolved::Component(artifact) => {
            let loaded = env
                .runtime
                .load_hashed(name, &artifact.bytes, artifact.sha256.clone())
                .map_err(|e| OpenError::Config(e.message))?;
            let grants = Grants::resolve(permissions, &env.cwd)
                .and_then(|grants| {
                    // The plugin store holds plugins Quarry loads, as the search path does.
                    let mut loaded_from = env.resolver.search_path().to_vec();
                    loaded_from.push(env.distribution.store().root().to_path_buf());
                    grants.refuse_reaching(env.cache_dir.as_deref(), &loaded_from)?;
                    Ok(grants)
                })
                .map_err(|e| OpenError::Grants(e.to_string()))?;
            let grants = Grants {
                timeout: grants.timeout.or(Some(crate::sandbox::DEFAULT_TIMEOUT)),
                ..grants
            };
            let instance = env.runtime.start(&loaded, name, &grants).await?;
            Opened {
                plugin: Box::new(instance),
                origin: Origin::Component {
                    digest: loaded.digest.clone(),
                },
            }
        }
        Resolved::Executable(path) => Opened {
            plugin: Box::new(GrpcPlugin::spawn(name, &path).await?),
            origin: Origin::Executable(path),
        },
        Resolved::Address(address) => Opened {
            plugin: Box::new(GrpcPlugin::dial(name, &address).await?),
            origin: Origin::Address(address),
        },
    })
}

/// Someone else's native executable runs only with `native: true` in its spec, and `native: true`
/// on a component is a mistake worth saying (it would suggest the sandbox is off).
fn consent(plugin: PluginRef<'_>, resolved: &Resolved) -> Result<(), SpecError> {
    let at = |message: String| SpecError::at(plugin.at.clone(), message);
    match resolved {
        Resolved::Executable(path) if plugin.registry == Registry::Local && !plugin.native => {
            Err(at(format!(
                "plugin `{}`: `{}` is a native executable ({}), not a WebAssembly component: it \
                 would run outside the sandbox, with your own rights",
                plugin.name,
                plugin.path,
                path.display()
            ))
            .with_help(
                "if you trust it as any program you run, add `native: true` to this plugin's \
                 spec; `quarry plugin inspect` shows its sha256 without running it",
            ))
        }
        Resolved::Component(_) if plugin.native => Err(at(format!(
            "plugin `{}`: `native: true`, but `{}` is a WebAssembly component, which always runs \
             in the sandbox",
            plugin.name, plugin.path
        ))
        .with_help("remove `native: true`; grant what it needs under `permissions`")),
        _ => Ok(()),
    }
}

/// What a plugin declares it needs, as grants: its network hosts, where an entry `spec:FIELD`
/// stands for the host (and port, if the URL names one) of the URL in that field of its spec
/// (a dot path for a nested field: `spec:client.base_url`), when the spec sets it; and its environment variables. Files are never granted this way: a
/// declared file need names a spec field, and the user grants the directory.
pub(crate) fn declared_grants(
    info: &crate::runtime::PluginInfo,
    spec: &serde_json::Value,
) -> Declared {
    let network = info
        .needs_network
        .iter()
        .filter_map(|need| match need.strip_prefix("spec:") {
            Some(field) => field
                .split('.')
                .try_fold(spec, |v, key| v.get(key))?
                .as_str()
                .and_then(url_host),
            None => Some(need.clone()),
        })
        .collect();
    Declared {
        network,
        env: info.needs_env.clone(),
    }
}

/// Grants a plugin declares it needs.
pub(crate) struct Declared {
    pub network: Vec<String>,
    pub env: Vec<String>,
}

/// `host` or `host:port` of an `http(s)://` or `scheme://` URL.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    (!authority.is_empty()).then(|| authority.to_string())
}

/// The registry a plugin named on the command line comes from: `quarry/<name>` is first-party,
/// an existing file (or a `.wasm`/`./` path) is local, `<registry-host>/<repository>[:tag|@digest]`
/// is OCI, and anything else is tried as a first-party name (whose error lists the plugins there
/// are).
pub fn registry_of(reference: &str, cwd: &Path) -> RegistryKind {
    let path_like = reference.starts_with(['.', '/'])
        || reference.ends_with(".wasm")
        || cwd.join(reference).exists();
    if reference.starts_with("quarry/") {
        RegistryKind::Quarry
    } else if path_like {
        RegistryKind::Local
    } else if quarry_registry::oci::Repository::parse_reference(reference).is_ok() {
        RegistryKind::Oci
    } else {
        RegistryKind::Quarry
    }
}

impl Environment {
    /// Resolves a plugin named on the command line (see [`registry_of`]); an OCI reference is
    /// fetched into the store (not locked). Errors are the message to show.
    pub async fn resolve_reference(&self, reference: &str) -> Result<Resolved, String> {
        match registry_of(reference, &self.cwd) {
            RegistryKind::Oci => {
                let (repository, version) =
                    quarry_registry::oci::Repository::parse_reference(reference)
                        .map_err(|e| e.to_string())?;
                let fetched = self
                    .distribution
                    .fetch(&repository.to_string(), version.as_deref(), None, &self.cwd)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Resolved::Component(fetched.artifact))
            }
            registry => self
                .resolver
                .resolve(registry, reference, &self.cwd)
                .map_err(|e| e.to_string()),
        }
    }
}

impl Environment {
    /// Resolves and opens one plugin of the spec, and checks that it can play `role` in the
    /// version the spec asks for. The plugin is not initialised.
    pub async fn open(&self, plugin: PluginRef<'_>, role: Role) -> Result<Opened, RunError> {
        let at = |message: String| SpecError::at(plugin.at.clone(), message);
        // A CloudQuery Hub plugin Quarry has no equivalent of comes from the configured mirror.
        let mirrored = match plugin.registry {
            Registry::Cloudquery
                if quarry_registry::cloudquery_equivalent(plugin.path).is_none() =>
            {
                self.distribution
                    .cloudquery_mirror(plugin.path)
                    .map_err(|e| at(format!("plugin `{}`: {e}", plugin.name)))?
            }
            _ => None,
        };
        let resolved = if plugin.registry == Registry::Oci || mirrored.is_some() {
            let path = mirrored.as_deref().unwrap_or(plugin.path);
            let fetched = self
                .distribution
                .fetch(path, plugin.version, plugin.verify, &self.cwd)
                .await
                .map_err(|e| at(format!("plugin `{}`: {e}", plugin.name)))?;
            tracing::debug!(
                plugin = plugin.name,
                manifest = %fetched.manifest,
                tag = fetched.tag.as_deref().unwrap_or("-"),
                "plugin fetched"
            );
            Resolved::Component(fetched.artifact)
        } else {
            self.resolver
                .resolve(plugin.registry, plugin.path, &self.cwd)
                .map_err(|e| {
                    let error = at(format!("plugin `{}`: {e}", plugin.name));
                    match e {
                        ResolveError::NoEquivalent { .. } => error.with_help(
                            "run CloudQuery's own build of it as a native plugin (`registry: local`, \
                             its executable as `path`, `native: true`), or name an OCI mirror of \
                             CloudQuery plugins as `cloudquery_mirror` in Quarry's config file",
                        ),
                        _ => error,
                    }
                })?
        };
        consent(plugin, &resolved)?;
        let opened = self.open_granted(plugin, resolved).await?;
        self.checked(plugin, opened, mirrored.is_some(), role)
    }

    /// Opens a resolved plugin with its spec's grants; under `--grant-declared` a component
    /// that declares needs beyond them is started again with those added (and each is logged).
    async fn open_granted(
        &self,
        plugin: PluginRef<'_>,
        resolved: Resolved,
    ) -> Result<Opened, RunError> {
        let again = (self.grant_declared && matches!(resolved, Resolved::Component(_)))
            .then(|| resolved.clone());
        let mut opened = self.open_with(plugin, resolved, plugin.permissions).await?;
        let Some(resolved) = again else {
            return Ok(opened);
        };
        let declared = declared_grants(opened.plugin.info(), &plugin.spec.value);
        let mut permissions = plugin.permissions.clone();
        let mut added = Vec::new();
        for host in declared.network {
            if !permissions.network.contains(&host) {
                added.push(format!("network `{host}`"));
                permissions.network.push(host);
            }
        }
        for name in declared.env {
            if !permissions.env.contains(&name) {
                added.push(format!("env `{name}`"));
                permissions.env.push(name);
            }
        }
        if added.is_empty() {
            return Ok(opened);
        }
        tracing::info!(
            plugin = plugin.name,
            "--grant-declared: granting `{}` what it declares it needs: {}",
            plugin.path,
            added.join(", ")
        );
        let _ = opened.plugin.close().await;
        self.open_with(plugin, resolved, &permissions).await
    }

    async fn open_with(
        &self,
        plugin: PluginRef<'_>,
        resolved: Resolved,
        permissions: &Permissions,
    ) -> Result<Opened, RunError> {
        let at = |message: String| SpecError::at(plugin.at.clone(), message);
        open(self, plugin.name, resolved, permissions)
            .await
            .map_err(|e| match e {
                OpenError::Config(message) => RunError::Config(at(format!(
                    "plugin `{}` ({}): {message}",
                    plugin.name, plugin.path
                ))),
                OpenError::Grants(message) => {
                    RunError::Config(at(format!("plugin `{}`: {message}", plugin.name)))
                }
                OpenError::Plugin(e) => RunError::Plugin(e),
            })
    }

    /// Checks an opened plugin against the spec: its transport, its kind and its version.
    fn checked(
        &self,
        plugin: PluginRef<'_>,
        opened: Opened,
        mirrored: bool,
        role: Role,
    ) -> Result<Opened, RunError> {
        let at = |message: String| SpecError::at(plugin.at.clone(), message);
        if !opened.origin.sandboxed() {
            if *plugin.permissions != Permissions::default() {
                tracing::warn!(
                    plugin = plugin.name,
                    "`permissions` apply only to wasm plugins; `{}` runs natively with your own rights",
                    plugin.path
                );
            } else if !matches!(plugin.registry, Registry::Quarry | Registry::Cloudquery) {
                // A first-party native plugin ships with quarry; anyone else's is said out loud.
                tracing::warn!(
                    plugin = plugin.name,
                    "`{}` is a native plugin: it runs outside the sandbox, with your own rights",
                    plugin.path
                );
            }
        }
        let info = opened.plugin.info();
        let kinds = info.kinds();
        if !kinds.contains(&role.as_str()) {
            let Some(is) = kinds.first() else {
                return Err(at(format!(
                    "`{}` says it is no source, destination or transformer plugin",
                    plugin.path
                ))
                .into());
            };
            return Err(at(format!(
                "`{}` is a {is} plugin, not a {} plugin",
                plugin.path,
                role.as_str()
            ))
            .with_help(format!("declare it as `kind: {is}`"))
            .into());
        }
        // A CloudQuery path runs as Quarry's own plugin: CloudQuery's version numbers are its
        // plugin's, not ours, so they are not compared; what ran is said once.
        if plugin.registry == Registry::Cloudquery && !mirrored {
            tracing::info!(
                plugin = plugin.name,
                "`{}`{} runs as Quarry's own `quarry/{}` {} (CloudQuery's version numbers do not apply to it)",
                plugin.path,
                plugin.version.map(|v| format!(" {v}")).unwrap_or_default(),
                info.name,
                info.version
            );
        }
        // An OCI plugin's `version:` names a tag, a requirement or a digest, resolved above.
        if let Some(version) = plugin.version
            && plugin.registry != Registry::Oci
            && plugin.registry != Registry::Cloudquery
            && version.trim_start_matches('v') != info.version
        {
            return Err(at(format!(
                "plugin `{}` is version {}, but the spec asks for {version}",
                plugin.path, info.version
            ))
            .with_help("change `version:` or remove it to use the plugin that is installed")
            .into());
        }
        Ok(opened)
    }

    /// Checks the plugin's `spec:` against the schema it declares, then initialises it.
    pub async fn initialise(
        &self,
        plugin: PluginRef<'_>,
        instance: &mut dyn AnyPlugin,
    ) -> Result<(), RunError> {
        if let Some(schema) = instance.spec_schema().await? {
            plugin.spec.validate(plugin.name, &schema)?;
        }
        instance
            .init(plugin.spec.value.to_string())
            .await
            .map_err(|e| match e.kind {
                ErrorKind::InvalidSpec => RunError::Config(SpecError::at(
                    plugin.at.clone(),
                    format!("plugin `{}` spec: {}", plugin.name, e.message),
                )),
                _ => RunError::Plugin(e),
            })?;
        tracing::debug!(plugin = plugin.name, version = %instance.info().version, "plugin ready");
        Ok(())
    }

    /// Opens, validates and initialises one plugin of the spec.
    pub async fn start(
        &self,
        plugin: PluginRef<'_>,
        role: Role,
    ) -> Result<Box<dyn AnyPlugin>, RunError> {
        let mut opened = self.open(plugin, role).await?;
        self.initialise(plugin, opened.plugin.as_mut()).await?;
        tracing::debug!(plugin = plugin.name, origin = %opened.origin, "plugin started");
        Ok(opened.plugin)
    }
}

#[cfg(test)]
mod tests {
    use super::declared_grants;
    use crate::runtime::PluginInfo;

    #[test]
    fn declared_needs_become_grants_with_spec_urls_resolved() {
        let info = PluginInfo {
            needs_network: vec![
                "api.example.com".into(),
                "spec:base_url".into(),
                "spec:unset".into(),
                "spec:not_text".into(),
                "spec:client.base_url".into(),
                "spec:client.auth.token_url".into(),
            ],
            needs_env: vec!["API_TOKEN".into()],
            needs_files: vec!["path".into()],
            ..PluginInfo::default()
        };
        let spec = serde_json::json!({
            "base_url": "https://user:secret@mirror.internal:8443/v0?x=1",
            "not_text": 5,
            "client": {"base_url": "http://127.0.0.1:9000/api"},
        });
        let declared = declared_grants(&info, &spec);
        assert_eq!(
            declared.network,
            ["api.example.com", "mirror.internal:8443", "127.0.0.1:9000"]
        );
        assert_eq!(declared.env, ["API_TOKEN"]);
        let without = declared_grants(&info, &serde_json::Value::Null);
        assert_eq!(without.network, ["api.example.com"]);
    }
}
