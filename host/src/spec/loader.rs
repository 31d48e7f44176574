//! Finding spec files, reading each document, and the checks that need every document at once
//! (unique names, destinations that exist, at least one source).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::de::from_node;
use super::error::{Location, SpecError};
use super::expand::{Env, expand};
use super::yaml::{Node, NodeKind, Pos, parse_documents};
use super::{DestinationSpec, Registry, SourceSpec, SyncSpec, TransformerSpec, Verify};

/// CloudQuery fields that have no meaning for Quarry: removed (with a warning) before the strict
/// read, so specs load unchanged and a typo is still an error. (`docker` plugins are refused.)
const IGNORED_SOURCE_FIELDS: &[&str] = &[
    "docker_registry_auth_token",
    // Only when empty (CloudQuery's default); a value is refused below.
    "otel_endpoint",
    // Without an endpoint it asks for nothing.
    "otel_endpoint_insecure",
];
const IGNORED_DESTINATION_FIELDS: &[&str] = &["docker_registry_auth_token"];

/// CloudQuery fields Quarry does not implement and will not pretend to: a spec that sets them is
/// refused with what to use instead, never run with the setting silently ignored.
const UNSUPPORTED_SOURCE_FIELDS: &[(&str, &str)] = &[("otel_endpoint", OTEL_HELP)];
const OTEL_HELP: &str = "Quarry does not export OpenTelemetry traces or metrics; remove the field. \
    Per-table rows, errors and durations are in `quarry sync --tables-metrics-location FILE` and \
    `--summary-location FILE` (JSON lines), and every log record in `--log-format json`";

/// Where to point when a file has no better position (e.g. a syntax error at the very start).
const FILE_START: Pos = Pos { line: 1, column: 1 };

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Source,
    Destination,
    Transformer,
}

/// `{kind, spec}`; `spec` is read on its own once `kind` says which struct it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `kind` and `spec`")]
struct Document {
    kind: Kind,
    #[serde(rename = "spec")]
    _spec: IgnoredAny,
}

/// A loaded document plus the positions that the cross-document checks point at.
struct Entry<T> {
    spec: T,
    name_at: Location,
    /// Where each name it lists is: a source's `destinations`, a destination's `transformers`.
    list_at: Vec<Location>,
}

impl Entry<DestinationSpec> {
    /// Where the destination lists transformer `name`.
    fn transformers_at(&self, name: &str) -> Location {
        self.spec
            .transformers
            .iter()
            .position(|t| t == name)
            .and_then(|i| self.list_at.get(i))
            .unwrap_or(&self.name_at)
            .clone()
    }
}

/// Where each item of the sequence `field` of `node` is.
fn items_at(file: &Path, node: &Node, field: &str) -> Vec<Location> {
    match node.get(field).map(|n| &n.kind) {
        Some(NodeKind::Seq(items)) => items
            .iter()
            .map(|item| Location::from_pos(file, item.at))
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn load(paths: &[PathBuf], env: Env<'_>) -> Result<SyncSpec, SpecError> {
    let mut texts = Vec::new();
    for file in spec_files(paths)? {
        let text = std::fs::read_to_string(&file).map_err(|e| cannot_read(&file, &e))?;
        texts.push((file, text));
    }
    load_texts(&texts, paths, env)
}

/// The specs in `texts` (each a file's name, for diagnostics, and its text); `given` is what the
/// user named, for the error of specs without a source.
pub(crate) fn load_texts(
    texts: &[(PathBuf, String)],
    given: &[PathBuf],
    env: Env<'_>,
) -> Result<SyncSpec, SpecError> {
    let mut documents = Documents::default();
    for (file, text) in texts {
        read_documents(file, text, env, &mut documents)?;
    }
    let Documents {
        sources,
        destinations,
        transformers,
    } = documents;
    check_unique(
        "source",
        sources.iter().map(|e| (e.spec.name.as_str(), &e.name_at)),
    )?;
    check_unique(
        "destination",
        destinations
            .iter()
            .map(|e| (e.spec.name.as_str(), &e.name_at)),
    )?;
    check_unique(
        "transformer",
        transformers
            .iter()
            .map(|e| (e.spec.name.as_str(), &e.name_at)),
    )?;
    check_references(&sources, &destinations)?;
    check_transformers(&destinations, &transformers)?;
    if sources.is_empty() {
        let given: Vec<String> = given.iter().map(|p| format!("`{}`", p.display())).collect();
        return Err(
            SpecError::new(format!("no sources defined in {}", given.join(", ")))
                .with_help("add a document with `kind: source`"),
        );
    }
    let mut sources: Vec<SourceSpec> = sources.into_iter().map(|e| e.spec).collect();
    let mut destinations: Vec<DestinationSpec> = destinations.into_iter().map(|e| e.spec).collect();
    let mut transformers: Vec<TransformerSpec> = transformers.into_iter().map(|e| e.spec).collect();
    super::references::resolve(&mut sources, &mut destinations, &mut transformers)?;
    Ok(SyncSpec {
        sources,
        destinations,
        transformers,
    })
}

/// Every document of the specs, by kind, in the order read.
#[derive(Default)]
struct Documents {
    sources: Vec<Entry<SourceSpec>>,
    destinations: Vec<Entry<DestinationSpec>>,
    transformers: Vec<Entry<TransformerSpec>>,
}

/// Reads every document of one spec file's `text`.
fn read_documents(
    file: &Path,
    text: &str,
    env: Env<'_>,
    read: &mut Documents,
) -> Result<(), SpecError> {
    let documents = parse_documents(text).map_err(|e| e.into_spec(file, FILE_START))?;
    for mut document in documents {
        let at = document.at;
        expand(&mut document, env).map_err(|e| e.into_spec(file, at))?;
        let Document { kind, .. } = from_node(&document).map_err(|e| e.into_spec(file, at))?;
        match kind {
            Kind::Source => read.sources.push(read_source(file, &mut document)?),
            Kind::Destination => read
                .destinations
                .push(read_destination(file, &mut document)?),
            Kind::Transformer => read
                .transformers
                .push(read_transformer(file, &mut document)?),
        }
    }
    Ok(())
}

/// Reads a one-document YAML file (Quarry's config) as `T`, `${VAR}` expanded.
pub(crate) fn load_file<T: for<'de> Deserialize<'de>>(
    file: &Path,
    env: Env<'_>,
) -> Result<T, SpecError> {
    let text = std::fs::read_to_string(file).map_err(|e| cannot_read(file, &e))?;
    let mut documents = parse_documents(&text).map_err(|e| e.into_spec(file, FILE_START))?;
    let Some(mut document) = documents.pop().filter(|_| documents.is_empty()) else {
        return Err(SpecError::at(
            Location::from_pos(file, FILE_START),
            "expected exactly one YAML document",
        ));
    };
    let at = document.at;
    expand(&mut document, env).map_err(|e| e.into_spec(file, at))?;
    from_node(&document).map_err(|e| e.into_spec(file, at))
}

/// The most instances of one source (and of each of its destinations) a sync runs at once.
pub const MAX_WORKERS: u32 = 64;

fn read_source(file: &Path, document: &mut Node) -> Result<Entry<SourceSpec>, SpecError> {
    for (field, help) in UNSUPPORTED_SOURCE_FIELDS {
        // CloudQuery's default is the empty string: that asks for nothing.
        if let Some(value) = document.get("spec").and_then(|spec| spec.get(field))
            && !value.is_null()
            && !matches!(&value.kind, NodeKind::Scalar(s) if s.text.trim().is_empty())
        {
            return Err(SpecError::at(
                Location::from_pos(file, value.at),
                format!("`{field}` is not supported"),
            )
            .with_help(*help));
        }
    }
    let node = spec_node(file, document, IGNORED_SOURCE_FIELDS);
    let mut source: SourceSpec = from_node(node).map_err(|e| e.into_spec(file, node.at))?;
    source.at = Location::from_pos(file, node.at);
    source.tables_at = value_at(file, node, "tables");
    for field in ["tables", "skip_tables"] {
        if let Some(NodeKind::Seq(items)) = node.get(field).map(|n| &n.kind) {
            for (item, pattern) in items.iter().zip(match field {
                "tables" => &source.tables,
                _ => &source.skip_tables,
            }) {
                source
                    .patterns_at
                    .push((pattern.clone(), Location::from_pos(file, item.at)));
            }
        }
    }
    source.spec.locate(file, node.get("spec"), node.at);
    infer_registry(node, &mut source.registry, &source.path);
    check_path(file, node, &source.path, source.registry)?;
    check_distribution(
        file,
        node,
        source.registry,
        &source.path,
        source.version.as_deref(),
        source.verify.as_ref(),
    )?;
    if source
        .workers
        .is_some_and(|n| !(1..=MAX_WORKERS).contains(&n))
    {
        return Err(SpecError::at(
            value_at(file, node, "workers"),
            format!("`workers` must be between 1 and {MAX_WORKERS}"),
        )
        .with_help("set `workers` to how many tables to sync at once, e.g. the number of cores (`workers: 2`)"));
    }
    if source.destinations.is_empty() {
        return Err(SpecError::at(
            value_at(file, node, "destinations"),
            format!("source `{}` has no destinations", source.name),
        )
        .with_help("name the destinations to write to, e.g. `destinations: [postgresql]`"));
    }
    Ok(Entry {
        name_at: value_at(file, node, "name"),
        list_at: items_at(file, node, "destinations"),
        spec: source,
    })
}

fn read_destination(file: &Path, document: &mut Node) -> Result<Entry<DestinationSpec>, SpecError> {
    let node = spec_node(file, document, IGNORED_DESTINATION_FIELDS);
    let mut destination: DestinationSpec =
        from_node(node).map_err(|e| e.into_spec(file, node.at))?;
    destination.at = Location::from_pos(file, node.at);
    destination.spec.locate(file, node.get("spec"), node.at);
    if let Some(template) = &destination.sync_group_id {
        let at = || value_at(file, node, "sync_group_id");
        super::sync_group::check(template).map_err(|e| {
            SpecError::at(at(), e).with_help(
                "write a label, optionally with {{YEAR}} {{MONTH}} {{DAY}} {{HOUR}} {{MINUTE}} {{SYNC_ID}}, e.g. `sync_group_id: \"{{YEAR}}-{{MONTH}}-{{DAY}}\"`",
            )
        })?;
        if destination.write_mode == super::WriteMode::OverwriteDeleteStale {
            return Err(SpecError::at(
                at(),
                "`sync_group_id` is not supported with write_mode `overwrite-delete-stale`: a sync would delete the rows of every other group",
            )
            .with_help("set `write_mode: append` (a copy of the rows per group) or `write_mode: overwrite`"));
        }
    }
    infer_registry(node, &mut destination.registry, &destination.path);
    check_path(file, node, &destination.path, destination.registry)?;
    check_distribution(
        file,
        node,
        destination.registry,
        &destination.path,
        destination.version.as_deref(),
        destination.verify.as_ref(),
    )?;
    let name_at = value_at(file, node, "name");
    Ok(Entry {
        list_at: items_at(file, node, "transformers"),
        spec: destination,
        name_at,
    })
}

fn read_transformer(file: &Path, document: &mut Node) -> Result<Entry<TransformerSpec>, SpecError> {
    let node = spec_node(file, document, IGNORED_DESTINATION_FIELDS);
    let mut transformer: TransformerSpec =
        from_node(node).map_err(|e| e.into_spec(file, node.at))?;
    transformer.at = Location::from_pos(file, node.at);
    transformer.spec.locate(file, node.get("spec"), node.at);
    infer_registry(node, &mut transformer.registry, &transformer.path);
    check_path(file, node, &transformer.path, transformer.registry)?;
    check_distribution(
        file,
        node,
        transformer.registry,
        &transformer.path,
        transformer.version.as_deref(),
        transformer.verify.as_ref(),
    )?;
    let name_at = value_at(file, node, "name");
    Ok(Entry {
        spec: transformer,
        name_at,
        list_at: Vec::new(),
    })
}

/// The document's `spec:` mapping, minus the accepted-but-ignored fields.
fn spec_node<'a>(file: &Path, document: &'a mut Node, ignored: &[&str]) -> &'a Node {
    if let NodeKind::Map(entries) = &mut document.kind
        && let Some((_, spec)) = entries
            .iter_mut()
            .find(|(key, _)| key.key_text() == Some("spec"))
        && let NodeKind::Map(fields) = &mut spec.kind
    {
        fields.retain(|(key, _)| {
            let field = key.key_text().unwrap_or_default();
            let keep = !ignored.contains(&field);
            if !keep {
                tracing::warn!(
                    file = %file.display(), line = key.at.line, field,
                    "spec field accepted for CloudQuery compatibility but not supported; ignored"
                );
            }
            keep
        });
    }
    let document: &'a Node = document;
    // `Document` already required `spec`; falling back keeps this total.
    document.get("spec").unwrap_or(document)
}

fn value_at(file: &Path, node: &Node, key: &str) -> Location {
    Location::from_pos(file, node.get(key).map_or(node.at, |value| value.at))
}

/// A CloudQuery spec leaves `registry` out for Hub plugins (CloudQuery's default): a path of
/// the `cloudquery` team with no `registry:` is read as `registry: cloudquery`.
fn infer_registry(node: &Node, registry: &mut Registry, path: &str) {
    if node.get("registry").is_none() && path.starts_with("cloudquery/") {
        *registry = Registry::Cloudquery;
    }
}

/// `path` is kept as written, but it must be usable by its registry.
fn check_path(file: &Path, node: &Node, path: &str, registry: Registry) -> Result<(), SpecError> {
    let at = || value_at(file, node, "path");
    if path.trim().is_empty() {
        return Err(SpecError::at(at(), "`path` must not be empty"));
    }
    match registry {
        Registry::Quarry | Registry::Cloudquery => {
            let valid_part = |part: &str| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            };
            let owner_name = path.split_once('/').is_some_and(|(owner, name)| {
                valid_part(owner) && valid_part(name) && owner != "." && owner != ".."
            });
            if !owner_name {
                let example = match registry {
                    Registry::Cloudquery => "`cloudquery/hackernews`",
                    _ => "`quarry/test`",
                };
                return Err(SpecError::at(
                    at(),
                    format!("`path`: `{path}` is not a registry plugin name"),
                )
                .with_help(format!(
                    "write `OWNER/NAME` (e.g. {example}), or set `registry: local` to load a \
                     component file"
                )));
            }
        }
        Registry::Github => {
            return Err(SpecError::at(
                value_at(file, node, "registry"),
                "`registry: github` downloads a native plugin from GitHub releases, which Quarry \
                 does not do (CloudQuery deprecated it too)",
            )
            .with_help(
                "download or build the plugin, then use `registry: local` with the executable as \
                 `path` and `native: true`, or run it and use `registry: grpc` with its address",
            ));
        }
        Registry::Docker => {
            return Err(SpecError::at(
                value_at(file, node, "registry"),
                "`registry: docker` runs a plugin in a container, which Quarry does not do",
            )
            .with_help(
                "run the container yourself (e.g. `docker run -p 7777:7777 IMAGE`) and use \
                 `registry: grpc` with `path: localhost:7777`",
            ));
        }
        Registry::Local if path.ends_with(['/', '\\']) => {
            return Err(SpecError::at(
                at(),
                format!("`path`: `{path}` is a directory; `registry: local` needs a file"),
            ));
        }
        Registry::Local | Registry::Grpc | Registry::Oci => {}
    }
    Ok(())
}

/// `version:` and `verify:` of an OCI plugin can be read; `verify:` is only for OCI plugins.
fn check_distribution(
    file: &Path,
    node: &Node,
    registry: Registry,
    path: &str,
    version: Option<&str>,
    verify: Option<&Verify>,
) -> Result<(), SpecError> {
    use quarry_registry::oci::{Repository, Version};
    if verify.is_some_and(|v| v.keys.is_empty()) {
        return Err(SpecError::at(
            value_at(file, node, "verify"),
            "`verify.keys` is empty: it would require no signature at all",
        )
        .with_help(
            "list the public keys whose signature the plugin must carry, or remove `verify`",
        ));
    }
    if registry == Registry::Cloudquery
        && let Some(version) = version
        && !version.starts_with('v')
    {
        return Err(SpecError::at(
            value_at(file, node, "version"),
            format!("`version`: CloudQuery versions start with `v`; `{version}` does not"),
        )
        .with_help("write it as CloudQuery does, e.g. `version: v3.0.24`"));
    }
    if registry != Registry::Oci {
        if verify.is_some() {
            return Err(SpecError::at(
                value_at(file, node, "verify"),
                format!("`verify` applies to `registry: oci` plugins; this one is `registry: {registry}`"),
            )
            .with_help("remove `verify`, or publish the plugin to a registry and sign it"));
        }
        return Ok(());
    }
    Repository::parse(path)
        .map_err(|e| SpecError::at(value_at(file, node, "path"), format!("`path`: {e}")))?;
    Version::parse(version)
        .map_err(|e| SpecError::at(value_at(file, node, "version"), format!("`version`: {e}")))?;
    Ok(())
}

fn check_unique<'a>(
    kind: &str,
    names: impl Iterator<Item = (&'a str, &'a Location)>,
) -> Result<(), SpecError> {
    let mut seen: HashMap<&str, &Location> = HashMap::new();
    for (name, at) in names {
        if let Some(first) = seen.insert(name, at) {
            return Err(
                SpecError::at(at.clone(), format!("duplicate {kind} name `{name}`"))
                    .with_help(format!("the first {kind} named `{name}` is at {first}")),
            );
        }
    }
    Ok(())
}

fn check_references(
    sources: &[Entry<SourceSpec>],
    destinations: &[Entry<DestinationSpec>],
) -> Result<(), SpecError> {
    let defined: Vec<&str> = destinations.iter().map(|d| d.spec.name.as_str()).collect();
    for source in sources {
        for (i, name) in source.spec.destinations.iter().enumerate() {
            if defined.contains(&name.as_str()) {
                continue;
            }
            let at = source.list_at.get(i).unwrap_or(&source.name_at).clone();
            let help = if defined.is_empty() {
                "no destinations are defined; add a document with `kind: destination`".to_owned()
            } else {
                let quoted: Vec<String> = defined.iter().map(|d| format!("`{d}`")).collect();
                format!("defined destinations: {}", quoted.join(", "))
            };
            return Err(SpecError::at(
                at,
                format!(
                    "source `{}` writes to undefined destination `{name}`",
                    source.spec.name
                ),
            )
            .with_help(help));
        }
    }
    Ok(())
}

/// Every transformer a destination lists is defined (CloudQuery's `destination <d> references
/// unknown transformer <t>`).
fn check_transformers(
    destinations: &[Entry<DestinationSpec>],
    transformers: &[Entry<TransformerSpec>],
) -> Result<(), SpecError> {
    let defined: Vec<&str> = transformers.iter().map(|t| t.spec.name.as_str()).collect();
    for destination in destinations {
        if let Some(name) = destination
            .spec
            .transformers
            .iter()
            .find(|name| !defined.contains(&name.as_str()))
        {
            let help = if defined.is_empty() {
                "no transformers are defined; add a document with `kind: transformer`".to_owned()
            } else {
                let quoted: Vec<String> = defined.iter().map(|d| format!("`{d}`")).collect();
                format!("defined transformers: {}", quoted.join(", "))
            };
            return Err(SpecError::at(
                destination.transformers_at(name),
                format!(
                    "destination `{}` references unknown transformer `{name}`",
                    destination.spec.name
                ),
            )
            .with_help(help));
        }
    }
    Ok(())
}

/// The files named by `paths`: files as given, directories expanded to their `*.yml`/`*.yaml`
/// files in name order (not recursive, so that a `fixtures/` folder beside the specs is not read).
fn spec_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SpecError> {
    if paths.is_empty() {
        return Err(SpecError::new("no spec files given")
            .with_help("pass spec files or directories, e.g. `quarry sync spec.yml`"));
    }
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| cannot_read(path, &e))?;
        if !metadata.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| cannot_read(path, &e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| cannot_read(path, &e))?;
            let file = entry.path();
            let is_yaml = file
                .extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml");
            if is_yaml && file.is_file() {
                found.push(file);
            }
        }
        if found.is_empty() {
            return Err(SpecError::new(format!(
                "no `*.yml` or `*.yaml` files in `{}`",
                path.display()
            )));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

fn cannot_read(path: &Path, error: &std::io::Error) -> SpecError {
    SpecError::new(format!("cannot read `{}`: {error}", path.display()))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz {
    use super::*;

    /// A bounded mutation run over every UI spec (tests/ui/*.yaml, the corpus): each mutant is
    /// an error or a spec, never a panic. `QUARRY_FUZZ_ITERATIONS` runs longer locally.
    #[test]
    fn mutated_specs_are_errors_never_panics() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui");
        let seeds = quarry_sdk::fuzz::corpus(&dir, ".yaml", 5);
        let iterations = quarry_sdk::fuzz::iterations(3000);
        const ALPHABET: &[u8] = b" \n\t:-[]{}'\"#&*!|>%@`,?$0123456789abcxyz.~";
        let mut mutator = quarry_sdk::fuzz::Mutator::text(0x9e37_79b9_7f4a_7c15, ALPHABET);
        let no_env = |_: &str| Err(std::env::VarError::NotPresent);
        for (file, text) in &seeds {
            for _ in 0..iterations {
                let bytes = mutator.mutate(text);
                let mutant = String::from_utf8_lossy(&bytes).into_owned();
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _ = read_documents(file, &mutant, &no_env, &mut Documents::default());
                }));
                assert!(
                    outcome.is_ok(),
                    "the spec loader panicked on a mutant of {}:\n{mutant}",
                    file.display()
                );
            }
        }
    }
}
