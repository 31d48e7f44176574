//! `quarry plugin inspect <plugin>`: what a plugin is, what it needs, and its spec's schema.

use std::path::Path;

use super::{CliError, Exit};
use crate::plan::{Environment, Origin};
use crate::runtime::PluginInfo;

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's name, version, kinds, the permissions it needs and its spec's JSON Schema.
    Inspect {
        /// `quarry/<name>` for a first-party plugin, or the path of a `.wasm` component or of a
        /// native plugin's executable.
        plugin: String,
    },
}

pub async fn run(command: PluginCommand) -> Result<Exit, CliError> {
    let PluginCommand::Inspect { plugin } = command;
    let env = Environment::from_process()?;
    let name = Path::new(&plugin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(plugin.clone());
    let mut opened = super::open_reference(&env, &plugin, &name).await?;
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

fn print_info(info: &PluginInfo, digest: &str, schema: &str) {
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
    let pretty = serde_json::from_str::<serde_json::Value>(schema)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(schema.to_string());
    println!("spec schema:\n{pretty}");
}
