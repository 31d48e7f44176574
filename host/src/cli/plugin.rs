//! `quarry plugin inspect <plugin>`: what a plugin is, what it needs, and its spec's schema.

use std::path::Path;

use quarry_registry::RegistryKind;

use super::{Exit, report_plugin_error};
use crate::sandbox::Grants;

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's name, version, kinds, the permissions it needs and its spec's JSON Schema.
    Inspect {
        /// `quarry/<name>` for a first-party plugin, or the path of a `.wasm` component.
        plugin: String,
    },
}

pub async fn run(command: PluginCommand) -> Exit {
    let PluginCommand::Inspect { plugin } = command;
    let env = match super::sync::environment() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Exit::Failure;
        }
    };
    let registry = if plugin.ends_with(".wasm") {
        RegistryKind::Local
    } else {
        RegistryKind::Quarry
    };
    let artifact = match env.resolver.resolve(registry, &plugin, &env.cwd) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Config;
        }
    };
    let name = Path::new(&plugin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(plugin.clone());
    let result = async {
        let loaded = env.runtime.load(&name, &artifact.bytes)?;
        let mut instance = env.runtime.start(&loaded, &name, &Grants::none()).await?;
        let schema = instance.spec_schema().await?;
        Ok::<_, crate::runtime::PluginError>((
            instance.info().clone(),
            schema,
            loaded.digest.clone(),
        ))
    }
    .await;
    let (info, schema, digest) = match result {
        Ok(r) => r,
        Err(e) => {
            report_plugin_error(&e);
            return Exit::Failure;
        }
    };
    let kinds: Vec<&str> = [(info.source, "source"), (info.destination, "destination")]
        .iter()
        .filter(|k| k.0)
        .map(|k| k.1)
        .collect();
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
    let pretty = serde_json::from_str::<serde_json::Value>(&schema)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(schema);
    println!("spec schema:\n{pretty}");
    Exit::Ok
}
