//! `quarry test-connection <spec>...`: asks every plugin of the specs whether it can reach what
//! its spec configures, and prints one line per plugin. A wasm plugin is initialised (in its
//! sandbox, with its grants) and asked; a gRPC plugin gets CloudQuery's `TestConnection`.

use super::{CliError, Exit};
use crate::plan::{PluginRef, Role, RunError};
use crate::runtime::Connection;

#[derive(Debug, clap::Args)]
pub struct TestConnectionArgs {
    #[command(flatten)]
    pub specs: super::Specs,
}

pub async fn run(args: TestConnectionArgs) -> Result<Exit, CliError> {
    let (spec, env) = super::load(&args.specs)?;
    let plugins = spec
        .sources
        .iter()
        .map(|s| (PluginRef::from(s), Role::Source))
        .chain(
            spec.destinations
                .iter()
                .map(|d| (PluginRef::from(d), Role::Destination)),
        );
    let mut exit = Exit::Ok;
    for (plugin, role) in plugins {
        // A plugin that cannot even be asked is a failure like the others, and the rest are
        // still tested; only a mistake in the spec stops the command.
        let outcome = match test(&env, plugin, role).await {
            Ok(outcome) => outcome,
            Err(CliError::Plugin(e)) => Connection::Failed {
                code: e.kind.code().to_string(),
                message: e.message,
            },
            Err(e) => return Err(e),
        };
        let what = format!("{} `{}` ({})", role.as_str(), plugin.name, plugin.path);
        match outcome {
            Connection::Succeeded => println!("{what}: connection succeeded"),
            Connection::NotImplemented => {
                println!("{what}: the plugin does not implement a connection test")
            }
            Connection::Failed { code, message } => {
                println!("{what}: connection failed: {code}: {message}");
                exit = Exit::SyncErrors;
            }
        }
    }
    Ok(exit)
}

/// Opens one plugin, checks its spec against its schema and asks it. A spec the schema refuses
/// is a failure of the test (`INVALID_SPEC`), reported like the others.
async fn test(
    env: &crate::plan::Environment,
    plugin: PluginRef<'_>,
    role: Role,
) -> Result<Connection, CliError> {
    let mut opened = env.open(plugin, role).await?;
    let instance = opened.plugin.as_mut();
    let result = async {
        if let Some(schema) = instance.spec_schema().await?
            && let Err(e) = plugin.spec.validate(plugin.name, &schema)
        {
            return Ok(Connection::Failed {
                code: "INVALID_SPEC".into(),
                message: e.message,
            });
        }
        Ok::<_, RunError>(
            instance
                .test_connection(plugin.spec.value.to_string())
                .await?,
        )
    }
    .await;
    // A plugin that was never initialised may refuse to close; only a process needs stopping.
    let _ = instance.close().await;
    Ok(result?)
}
