//! `quarry init --source P --destination P`: writes a commented spec for one source and one
//! destination from what the plugins say about themselves — their spec schemas (required
//! fields, defaults, descriptions) and the grants they declare they need — ready for
//! `quarry validate` once its required fields are filled.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use super::{CliError, Exit};
use crate::plan::{Environment, Origin};
use crate::runtime::PluginInfo;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The source plugin: `quarry/<name>`, or a `.wasm` component or native executable.
    #[arg(long, default_value = "quarry/test")]
    pub source: String,
    /// The destination plugin.
    #[arg(long, default_value = "quarry/sqlite")]
    pub destination: String,
    /// Where to write the spec (default: `<source>_to_<destination>.yaml`); `-` for standard
    /// output.
    #[arg(long, value_name = "FILE")]
    pub spec_path: Option<PathBuf>,
    /// Start a native executable that is not first-party to ask it for its schema (it runs
    /// outside the sandbox, with your rights).
    #[arg(long)]
    pub run_native: bool,
}

/// What a plugin says about itself, for its part of the spec.
struct Described {
    reference: String,
    name: String,
    info: PluginInfo,
    schema: Value,
    sandboxed: bool,
    /// How a spec names it: `registry: local`, `oci` or first-party (no `registry:` line).
    registry: crate::spec::Registry,
}

pub async fn run(args: InitArgs) -> Result<Exit, CliError> {
    let env = Environment::from_process()?;
    let source = describe(&env, &args.source, args.run_native).await?;
    let mut destination = describe(&env, &args.destination, args.run_native).await?;
    if !source.info.source {
        return Err(CliError::Usage(format!(
            "`{}` is not a source plugin",
            args.source
        )));
    }
    if !destination.info.destination {
        return Err(CliError::Usage(format!(
            "`{}` is not a destination plugin",
            args.destination
        )));
    }
    if destination.name == source.name {
        destination.name += "_destination";
    }
    let text = render(&source, &destination);
    let path = args
        .spec_path
        .unwrap_or_else(|| PathBuf::from(format!("{}_to_{}.yaml", source.name, destination.name)));
    if path.as_os_str() == "-" {
        print!("{text}");
        return Ok(Exit::Ok);
    }
    if path.exists() {
        return Err(CliError::Usage(format!(
            "{} exists; choose another file with `--spec-path`, or remove it",
            path.display()
        )));
    }
    std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "Wrote {}: fill in the fields marked REQUIRED, then run `quarry validate {}`",
        path.display(),
        path.display()
    );
    Ok(Exit::Ok)
}

async fn describe(
    env: &Environment,
    reference: &str,
    run_native: bool,
) -> Result<Described, CliError> {
    let mut opened = super::open_reference(env, reference, reference, run_native).await?;
    let schema = opened.plugin.spec_schema().await;
    let _ = opened.plugin.close().await;
    let schema = schema?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Bool(true));
    let name = reference
        .rsplit('/')
        .next()
        .unwrap_or(reference)
        .trim_end_matches(".wasm")
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
    Ok(Described {
        reference: reference.to_string(),
        name,
        info: opened.plugin.info().clone(),
        schema,
        sandboxed: matches!(opened.origin, Origin::Component { .. }),
        registry: crate::plan::registry_of(reference, &env.cwd),
    })
}

fn render(source: &Described, destination: &Described) -> String {
    let mut out = format!(
        "# A Quarry sync: {} → {}.\n# Fill in every field marked REQUIRED, then check the spec with `quarry validate`.\n",
        source.reference, destination.reference
    );
    out += "kind: source\nspec:\n";
    header(&mut out, source);
    commented(
        &mut out,
        "  tables: [\"*\"]",
        "globs of table names; `quarry tables` lists them",
    );
    let _ = writeln!(out, "  destinations: [\"{}\"]", destination.name);
    plugin_spec(&mut out, &source.schema);
    permissions(&mut out, source);
    out += "---\nkind: destination\nspec:\n";
    header(&mut out, destination);
    let modes: Vec<String> = destination
        .info
        .write_modes
        .iter()
        .map(|m| m.to_string())
        .collect();
    if let Some(first) = modes.first() {
        let chosen = if modes.iter().any(|m| m == "overwrite-delete-stale") {
            "overwrite-delete-stale"
        } else {
            first
        };
        commented(
            &mut out,
            &format!("  write_mode: {chosen}"),
            &format!("this plugin supports: {}", modes.join(", ")),
        );
    }
    commented(
        &mut out,
        "  migrate_mode: safe",
        "forced: drop and recreate a table when a change loses data",
    );
    plugin_spec(&mut out, &destination.schema);
    permissions(&mut out, destination);
    out
}

fn header(out: &mut String, plugin: &Described) {
    let _ = writeln!(out, "  name: {}", plugin.name);
    use crate::spec::Registry;
    if plugin.registry != Registry::Quarry {
        let _ = writeln!(out, "  registry: {}", plugin.registry);
    }
    if !plugin.sandboxed && plugin.registry == Registry::Local {
        commented(
            out,
            "  native: true",
            "this executable runs outside the sandbox, with your own rights",
        );
    }
    // An OCI reference's tag or digest is the spec's `version:`.
    let (path, version) = match plugin.registry {
        Registry::Oci => quarry_registry::oci::Repository::parse_reference(&plugin.reference)
            .map(|(repository, version)| (repository.to_string(), version))
            .unwrap_or_else(|_| (plugin.reference.clone(), None)),
        _ => (plugin.reference.clone(), None),
    };
    if let Some(version) = version {
        let _ = writeln!(out, "  version: \"{version}\"");
    }
    commented(
        out,
        &format!("  path: {path}"),
        &format!(
            "{} {}",
            plugin.info.version,
            one_line(&plugin.info.description)
        ),
    );
}

/// The plugin's `spec:` from its schema: required fields to fill in, the others commented out
/// with their defaults.
fn plugin_spec(out: &mut String, schema: &Value) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let Some(properties) = properties.filter(|p| !p.is_empty()) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("  spec:\n");
    // Field names come from the plugin: only plain names are written as YAML keys, so a schema
    // cannot add lines (a grant, say) to the spec the user is about to fill in.
    let plain = |f: &str| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    for (field, property) in properties.iter().filter(|(f, _)| plain(f)) {
        let description = property
            .get("description")
            .and_then(Value::as_str)
            .map(one_line)
            .unwrap_or_default();
        let default = property.get("default").filter(|d| !d.is_null());
        if required.contains(&field.as_str()) && default.is_none() {
            let _ = writeln!(out, "    # REQUIRED. {description}");
            let _ = writeln!(out, "    {field}:");
        } else {
            if !description.is_empty() {
                let _ = writeln!(out, "    # {description}");
            }
            let value = default.map_or_else(String::new, |d| format!(" {d}"));
            let _ = writeln!(out, "    # {field}:{value}");
        }
    }
}

/// The grants the plugin declares it needs; a native plugin runs unsandboxed and takes none.
fn permissions(out: &mut String, plugin: &Described) {
    let needs = &plugin.info;
    if !plugin.sandboxed {
        out.push_str(
            "  # A native plugin: it runs with your own rights, and takes no `permissions`.\n",
        );
        return;
    }
    // A need that stands for a spec field's URL (`spec:base_url`) is granted by what the user
    // writes there; the spec written here sets none of them.
    let network = crate::plan::declared_grants(needs, &serde_json::Value::Null).network;
    let from_fields: Vec<&str> = needs
        .needs_network
        .iter()
        .filter_map(|n| n.strip_prefix("spec:"))
        .collect();
    if network.is_empty()
        && from_fields.is_empty()
        && needs.needs_files.is_empty()
        && needs.needs_env.is_empty()
    {
        return;
    }
    commented(
        out,
        "  permissions:",
        "what the sandbox lets the plugin reach",
    );
    if !network.is_empty() || !from_fields.is_empty() {
        let hosts: Vec<String> = network.iter().map(|h| format!("\"{h}\"")).collect();
        let line = format!("    network: [{}]", hosts.join(", "));
        if from_fields.is_empty() {
            let _ = writeln!(out, "{line}");
        } else {
            // The hosts of URLs the user has yet to write: say which fields they come from
            // (`quarry sync --grant-declared` grants them once set).
            commented(
                out,
                &line,
                &format!("and the host of {}", from_fields.join(", ")),
            );
        }
    }
    if !needs.needs_files.is_empty() {
        commented(
            out,
            "    files: { \".\": write }",
            &format!(
                "the directories of {}; narrow it to them",
                needs.needs_files.join(", ")
            ),
        );
    }
    if !needs.needs_env.is_empty() {
        let _ = writeln!(out, "    env: [{}]", needs.needs_env.join(", "));
    }
}

/// A line with a comment after it, comments aligned.
fn commented(out: &mut String, line: &str, comment: &str) {
    let _ = writeln!(out, "{line:<31} # {comment}");
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
