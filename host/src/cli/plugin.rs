//! `quarry plugin inspect <plugin>`: what a plugin is, what it needs, and its spec's schema.

use std::path::Path;

use quarry_registry::{RegistryKind, Resolved};

use super::{Exit, report_plugin_error};
use crate::runtime::AnyPlugin;
use crate::runtime::grpc::GrpcPlugin;
use crate::sandbox::Grants;

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's name, version, kinds, the permissions it needs and its spec's JSON Schema.
    Inspect {
        /// `quarry/<name>` for a first-party plugin, or the path of a `.wasm` component or of a
        /// native plugin's executable.
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
    let registry = if plugin.starts_with("quarry/") || !Path::new(&plugin).exists() {
        RegistryKind::Quarry
    } else {
        RegistryKind::Local
    };
    let resolved = match env.resolver.resolve(registry, &plugin, &env.cwd) {
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
        let (mut instance, digest): (Box<dyn AnyPlugin>, String) = match resolved {
            Resolved::Component(artifact) => {
                let loaded = env.runtime.load(&name, &artifact.bytes)?;
                let instance = env.runtime.start(&loaded, &name, &Grants::none()).await?;
                (Box::new(instance), loaded.digest.clone())
            }
            Resolved::Executable(path) => {
                let digest = std::fs::read(&path)
                    .map(|bytes| crate::runtime::wasm::sha256_hex(&bytes))
                    .unwrap_or_default();
                (Box::new(GrpcPlugin::spawn(&name, &path).await?), digest)
            }
            Resolved::Address(address) => (
                Box::new(GrpcPlugin::dial(&name, &address).await?),
                "-".into(),
            ),
        };
        let schema = instance.spec_schema().await?;
        let info = instance.info().clone();
        // A plugin that was never initialised may refuse to close; only a process needs stopping.
        let _ = instance.close().await;
        Ok::<_, crate::runtime::PluginError>((
            info,
            schema.unwrap_or_else(|| "true".into()),
            digest,
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
