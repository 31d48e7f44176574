//! `quarry plugin ...`: what a plugin is (`inspect`), and getting, publishing and signing plugins
//! in OCI registries (`push`, `pull`, `install`, `update`, `list`, `sign`, `keygen`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quarry_registry::oci::{ComponentInfo, Publication, Repository, Version};
use quarry_registry::signature::SigningKey;
use quarry_registry::{Digest, Resolved};

use super::{CliError, Exit, Specs};
use crate::plan::distribution::{FetchError, Mode};
use crate::plan::{Environment, Origin, PluginRef, registry_of};
use crate::runtime::PluginInfo;
use crate::spec::{Permissions, Registry};

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's name, version, kinds, the permissions it needs and its spec's JSON Schema;
    /// for a registry reference, what the registry says about it (nothing is run).
    Inspect {
        /// `quarry/<name>`, the path of a `.wasm` component or of a native plugin's executable,
        /// or `<registry-host>/<repository>[:tag|@sha256:...]`.
        plugin: String,
        /// Start a native executable that is not first-party to ask it (it runs outside the
        /// sandbox, with your rights); without this, only its digest is shown.
        #[arg(long)]
        run_native: bool,
    },
    /// Publish a component to an OCI registry (the CNCF Wasm artifact layout).
    Push {
        /// The `.wasm` component.
        file: PathBuf,
        /// `<registry-host>/<repository>[:tag]`; the tag defaults to the plugin's version.
        reference: String,
        /// An extra manifest annotation (repeatable).
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
    },
    /// Fetch a plugin from its registry into the plugin store.
    Pull {
        /// `<registry-host>/<repository>[:tag|@sha256:...]`.
        reference: String,
    },
    /// Fetch every OCI plugin the specs name into the store and pin them in quarry.lock, for
    /// offline runs.
    Install(Specs),
    /// Resolve every OCI plugin of the specs again (tags may have moved) and rewrite quarry.lock;
    /// with --locked, fail if anything would change.
    Update(Specs),
    /// List the plugins in the store, with digests and sizes.
    List,
    /// Sign a plugin in its registry (cosign's key-based signature format).
    Sign {
        /// `<registry-host>/<repository>[:tag|@sha256:...]`.
        reference: String,
        /// The private key (PKCS#8 PEM; `quarry plugin keygen` makes one).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Make a signing key pair: PREFIX.key (private, mode 0600) and PREFIX.pub.
    Keygen {
        /// The files' path without extension.
        prefix: PathBuf,
    },
    /// Run a plugin through the calls the host makes (info, spec schema, init, tables and a short
    /// sync, or with --write a test table) and report what is wrong; exit 1 if anything is.
    Check(super::check::CheckArgs),
}

pub async fn run(command: PluginCommand) -> Result<Exit, CliError> {
    match command {
        PluginCommand::Inspect { plugin, run_native } => inspect(&plugin, run_native).await,
        PluginCommand::Push {
            file,
            reference,
            annotations,
        } => push(&file, &reference, &annotations).await,
        PluginCommand::Pull { reference } => pull(&reference).await,
        PluginCommand::Install(specs) => install(&specs, false).await,
        PluginCommand::Update(specs) => install(&specs, true).await,
        PluginCommand::List => list(),
        PluginCommand::Sign { reference, key } => sign(&reference, &key).await,
        PluginCommand::Keygen { prefix } => keygen(&prefix),
        PluginCommand::Check(args) => super::check::run(args).await,
    }
}

fn fetch_error(e: FetchError) -> CliError {
    CliError::Usage(e.to_string())
}

async fn inspect(plugin: &str, run_native: bool) -> Result<Exit, CliError> {
    let env = Environment::from_process()?;
    let registry = registry_of(plugin, &env.cwd);
    if registry == Registry::Oci {
        return inspect_remote(&env, plugin).await;
    }
    // Inspecting is looking, not running: someone else's native executable is not started.
    // Resolved once: what is shown is what would be opened.
    let resolved = env
        .resolve_reference(plugin)
        .await
        .map_err(CliError::Usage)?;
    if registry == Registry::Local
        && !run_native
        && let Resolved::Executable(path) = &resolved
    {
        let digest = std::fs::read(path)
            .map(|bytes| crate::runtime::wasm::sha256_hex(&bytes))
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        println!("path:        {}", path.display());
        println!("kind:        native executable (runs outside the sandbox, with your rights)");
        println!("sha256:      {digest}");
        println!(
            "not run: a native plugin is only started when you ask (`quarry plugin inspect --run-native {plugin}`)"
        );
        return Ok(Exit::Ok);
    }
    let name = Path::new(plugin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(plugin.to_string());
    let mut opened = super::open_resolved(
        &env,
        plugin,
        &name,
        resolved,
        run_native,
        &Permissions::default(),
    )
    .await?;
    let schema = opened.plugin.spec_schema().await;
    // A plugin that was never initialised may refuse to close; only a process needs stopping.
    let _ = opened.plugin.close().await;
    let schema = schema?.unwrap_or_else(|| "true".into());
    let digest = match &opened.origin {
        Origin::Component { digest } => digest.clone(),
        Origin::Executable(path) => std::fs::read(path)
            .map(|bytes| crate::runtime::wasm::sha256_hex(&bytes))
            .unwrap_or_default(),
        Origin::Address(_) => "-".into(),
    };
    print_info(opened.plugin.info(), &digest, &schema);
    Ok(Exit::Ok)
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// A Wasm artifact in its registry, as a command-line reference names it.
struct Remote {
    repository: Repository,
    client: std::sync::Arc<quarry_registry::oci::Client>,
    tag: Option<String>,
    digest: Digest,
    manifest: quarry_registry::oci::Manifest,
}

/// Resolves `reference` and reads its manifest, checked to be a Wasm artifact.
async fn remote(env: &Environment, reference: &str) -> Result<Remote, CliError> {
    let (repository, version) = Repository::parse_reference(reference).map_err(usage)?;
    let version = Version::parse(version.as_deref()).map_err(usage)?;
    let client = env.distribution.client(&repository).map_err(fetch_error)?;
    let (tag, digest) = client.resolve(&repository, &version).await.map_err(usage)?;
    let bytes = client.manifest(&repository, &digest).await.map_err(usage)?;
    let shown = format!("{repository}@{digest}");
    let manifest = quarry_registry::oci::Manifest::parse(&bytes, &shown).map_err(usage)?;
    manifest.component(&shown).map_err(usage)?;
    Ok(Remote {
        repository,
        client,
        tag,
        digest,
        manifest,
    })
}

/// What the registry says about a plugin: its manifest, annotations and signatures. Nothing is
/// downloaded beyond the manifest, and nothing runs.
async fn inspect_remote(env: &Environment, reference: &str) -> Result<Exit, CliError> {
    let Remote {
        repository,
        client,
        tag,
        digest,
        manifest,
    } = remote(env, reference).await?;
    let shown = format!("{repository}@{digest}");
    let layer = manifest.component(&shown).map_err(usage)?;
    let signatures = client
        .signatures(&repository, &digest)
        .await
        .map_err(usage)?
        .map_or(0, |(_, blobs)| blobs.len());
    println!(
        "reference:   {repository}{}",
        tag.map(|t| format!(":{t}")).unwrap_or_default()
    );
    println!("manifest:    {digest}");
    println!("component:   {} ({} bytes)", layer.digest, layer.size);
    println!("signatures:  {signatures}");
    println!("annotations:");
    for (key, value) in &manifest.annotations {
        println!("  {key}: {value}");
    }
    Ok(Exit::Ok)
}

fn now() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    crate::sync::summary::rfc3339(micros)
}

/// The annotations a pushed plugin carries: OCI's standard ones, and what Quarry users need to
/// decide before running it (its kinds, and the grants it declares it needs).
fn annotations(info: &PluginInfo, extra: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let kinds = info.kinds();
    let needs = serde_json::json!({
        "network": info.needs_network,
        "files": info.needs_files,
        "env": info.needs_env,
    });
    let mut map = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            info.name.clone(),
        ),
        (
            "org.opencontainers.image.version".to_string(),
            info.version.clone(),
        ),
        (
            "org.opencontainers.image.description".to_string(),
            info.description.clone(),
        ),
        ("org.opencontainers.image.created".to_string(), now()),
        ("dev.quarry.plugin.name".to_string(), info.name.clone()),
        ("dev.quarry.plugin.kinds".to_string(), kinds.join(",")),
        ("dev.quarry.plugin.needs".to_string(), needs.to_string()),
    ]);
    for pair in extra {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CliError::Usage(format!(
                "--annotation `{pair}`: expected KEY=VALUE"
            )));
        };
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}

async fn push(file: &Path, reference: &str, extra: &[String]) -> Result<Exit, CliError> {
    let env = Environment::from_process()?;
    let (repository, tag) = Repository::parse_reference(reference).map_err(usage)?;
    if tag.as_deref().is_some_and(|t| t.starts_with("sha256:")) {
        return Err(CliError::Usage(format!(
            "`{reference}`: push to a tag, not a digest (the digest is computed)"
        )));
    }
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    if !bytes.starts_with(b"\0asm") {
        return Err(CliError::Usage(format!(
            "{} is not a WebAssembly component; only components can be published",
            file.display()
        )));
    }
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    // Loaded (not initialised, no grants) to read what it says about itself.
    let artifact = quarry_registry::Artifact {
        path: file.to_path_buf(),
        sha256: Digest::of(&bytes).hex().to_string(),
        bytes: bytes.into(),
    };
    let mut opened = crate::plan::open(
        &env,
        &name,
        Resolved::Component(artifact.clone()),
        &Permissions::default(),
    )
    .await
    .map_err(|e| match e {
        crate::plan::OpenError::Plugin(e) => CliError::Plugin(e),
        crate::plan::OpenError::Config(m) | crate::plan::OpenError::Grants(m) => {
            CliError::Usage(format!("{}: {m}", file.display()))
        }
    })?;
    let info = opened.plugin.info().clone();
    let _ = opened.plugin.close().await;
    let loaded = env
        .runtime
        .load_hashed(&name, &artifact.bytes, artifact.sha256.clone())?;
    let (imports, exports) = env.runtime.interfaces(&loaded);
    let tag = tag.unwrap_or_else(|| info.version.clone());
    if !quarry_registry::oci::is_tag(&tag) {
        return Err(CliError::Usage(format!("`{tag}` is not a valid tag")));
    }
    let client = env.distribution.client(&repository).map_err(fetch_error)?;
    let digest = client
        .push(
            &repository,
            &tag,
            Publication {
                component: &artifact.bytes,
                world: ComponentInfo { exports, imports },
                annotations: annotations(&info, extra)?,
                title: format!("{}.wasm", info.name),
                created: now(),
            },
        )
        .await
        .map_err(usage)?;
    println!("pushed {repository}:{tag}");
    println!("manifest:  {digest}");
    println!(
        "component: sha256:{} ({} bytes)",
        artifact.sha256,
        artifact.bytes.len()
    );
    Ok(Exit::Ok)
}

async fn pull(reference: &str) -> Result<Exit, CliError> {
    let env = Environment::from_process()?;
    let (repository, version) = Repository::parse_reference(reference).map_err(usage)?;
    let fetched = env
        .distribution
        .fetch(&repository.to_string(), version.as_deref(), None, &env.cwd)
        .await
        .map_err(fetch_error)?;
    println!(
        "pulled {repository}{}",
        fetched
            .tag
            .as_deref()
            .map(|t| format!(":{t}"))
            .unwrap_or_default()
    );
    println!("manifest:  {}", fetched.manifest);
    println!(
        "component: sha256:{} ({} bytes)",
        fetched.artifact.sha256,
        fetched.artifact.bytes.len()
    );
    println!("stored at: {}", fetched.artifact.path.display());
    Ok(Exit::Ok)
}

/// `install` and `update`: every OCI plugin of the specs, fetched and pinned.
async fn install(specs: &Specs, update: bool) -> Result<Exit, CliError> {
    let (spec, mut env) = super::load(specs)?;
    if update {
        let mode = env.distribution.mode();
        if mode.offline {
            return Err(CliError::Usage(
                "`quarry plugin update` asks the registries where tags point now; run it without --offline".into(),
            ));
        }
        env.distribution.set_mode(Mode {
            update: true,
            ..mode
        });
    }
    let references = spec
        .sources
        .iter()
        .map(PluginRef::from)
        .chain(spec.destinations.iter().map(PluginRef::from))
        .chain(spec.transformers.iter().map(PluginRef::from));
    let mut count = 0;
    for PluginRef {
        name,
        registry,
        path,
        version,
        verify,
        at,
        ..
    } in references
    {
        if registry != Registry::Oci {
            continue;
        }
        let fetched = env
            .distribution
            .fetch(path, version, verify, &env.cwd)
            .await
            .map_err(|e| {
                CliError::Config(crate::spec::SpecError::at(
                    at.clone(),
                    format!("plugin `{name}`: {e}"),
                ))
            })?;
        count += 1;
        println!(
            "{path}{}  {}  {} bytes",
            version.map(|v| format!(" {v}")).unwrap_or_default(),
            fetched.manifest,
            fetched.artifact.bytes.len()
        );
    }
    for moved in env.distribution.moves() {
        println!("moved: {moved}");
    }
    super::save_lock(&env)?;
    if let Some(path) = env.distribution.lock_path() {
        eprintln!("{count} plugin(s) pinned in {}", path.display());
    }
    Ok(Exit::Ok)
}

fn list() -> Result<Exit, CliError> {
    let env = Environment::from_process()?;
    let store = env.distribution.store();
    let refs = store.refs();
    if refs.is_empty() {
        println!("the plugin store ({}) is empty", store.root().display());
        return Ok(Exit::Ok);
    }
    println!(
        "{:<48} {:<16} {:<14} {:<14} {:>10}  PULLED",
        "REPOSITORY", "TAG", "MANIFEST", "COMPONENT", "SIZE"
    );
    for r in refs {
        let present = store.blob_path(&r.component).is_file();
        println!(
            "{:<48} {:<16} {:<14} {:<14} {:>10}  {}{}",
            r.repository,
            if r.tag.starts_with("sha256:") {
                "-"
            } else {
                &r.tag
            },
            r.manifest.short(),
            r.component.short(),
            r.size,
            r.pulled,
            if present { "" } else { "  (component missing)" }
        );
    }
    Ok(Exit::Ok)
}

async fn sign(reference: &str, key: &Path) -> Result<Exit, CliError> {
    let env = Environment::from_process()?;
    let text = std::fs::read_to_string(key)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", key.display())))?;
    let key = SigningKey::from_pem(&text, &key.display().to_string()).map_err(usage)?;
    // Only a Wasm artifact is signed: its manifest is read and checked first.
    let Remote {
        repository,
        client,
        digest,
        ..
    } = remote(&env, reference).await?;
    let shown = format!("{repository}@{digest}");
    let blob = key.sign(&repository.to_string(), &digest).map_err(usage)?;
    client
        .push_signature(&repository, &digest, blob)
        .await
        .map_err(usage)?;
    println!(
        "signed {shown} with key {} (stored as {repository}:{})",
        key.public().fingerprint(),
        digest.signature_tag()
    );
    Ok(Exit::Ok)
}

fn keygen(prefix: &Path) -> Result<Exit, CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let private = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    let (pem, key) = SigningKey::generate().map_err(usage)?;
    let write = |path: &Path, text: &str, mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
    };
    write(&private, &pem, 0o600)?;
    write(&public, &key.public().to_pem(), 0o644)?;
    println!("private key: {} (keep it secret)", private.display());
    println!(
        "public key:  {} (give it to `verify: keys:`)",
        public.display()
    );
    println!("fingerprint: {}", key.public().fingerprint());
    Ok(Exit::Ok)
}

fn print_info(info: &PluginInfo, digest: &str, schema: &str) {
    let kinds = info.kinds();
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("name:        {}", info.name);
    println!("version:     {}", info.version);
    println!("kinds:       {}", kinds.join(", "));
    println!("description: {}", info.description);
    println!("sha256:      {digest}");
    println!("needs:");
    println!("  network:   {}", list(&info.needs_network));
    println!(
        "  files:     {} (spec fields holding paths; grant their directories under permissions.files)",
        list(&info.needs_files)
    );
    println!("  env:       {}", list(&info.needs_env));
    if info.destination {
        let modes: Vec<String> = info.write_modes.iter().map(|m| m.to_string()).collect();
        println!("write modes: {}", modes.join(", "));
        let or_default = |n: u64, default: usize| {
            if n == 0 {
                format!("{default} (the default)")
            } else {
                n.to_string()
            }
        };
        println!(
            "batch:       {} rows, {} bytes",
            or_default(info.batch_rows, crate::sync::batcher::Limits::DEFAULT.rows),
            or_default(
                info.batch_bytes,
                crate::sync::batcher::Limits::DEFAULT.bytes
            )
        );
    }
    let pretty = serde_json::from_str::<serde_json::Value>(schema)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(schema.to_string());
    println!("spec schema:\n{pretty}");
}
