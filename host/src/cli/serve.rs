//! `quarry serve <plugin>`: any Quarry plugin, wasm included, as a CloudQuery v3 gRPC plugin, so
//! that CloudQuery's CLI can start it (`registry: local`) or dial it (`registry: grpc`). A wasm
//! plugin keeps its sandbox: the grants are this command's `--allow-*` flags, since the
//! CloudQuery spec has no place for them.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use quarry_grpc::serve::{Selection, Served, SyncMessage, WriteMessage};
use quarry_registry::Resolved;
use tokio::sync::{Mutex, mpsc};
use tonic::{Code, Status};

use super::{CliError, Exit};
use crate::plan::Environment;
use crate::runtime::wasm::{LoadedComponent, WasmPlugin, WasmRuntime};
use crate::runtime::{
    Destination, ErrorKind, Plugin, PluginError, PluginInfo, Source, SourceMessage, SyncInput,
    TableSelection, Transformer,
};
use crate::sandbox::Grants;
use crate::spec::units::{parse_byte_size, parse_duration};
use crate::spec::{Access, Permissions};

#[derive(Debug, clap::Args)]
pub struct ServeCommand {
    /// `quarry/<name>` for a first-party plugin, or the path of a `.wasm` component.
    pub plugin: String,
    #[command(flatten)]
    pub grants: GrantArgs,
    #[command(flatten)]
    pub serve: quarry_grpc::serve::ServeArgs,
}

/// A component's grants on the command line (`quarry serve`, `quarry plugin check`).
#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    /// Let the plugin connect to this host (`host`, `host:port`, `*.domain`); repeatable.
    #[arg(long, value_name = "HOST")]
    pub allow_net: Vec<String>,
    /// Let the plugin read this directory or file; repeatable.
    #[arg(long, value_name = "PATH")]
    pub allow_read: Vec<String>,
    /// Let the plugin read and write this directory; repeatable.
    #[arg(long, value_name = "PATH")]
    pub allow_write: Vec<String>,
    /// Pass this environment variable through; repeatable.
    #[arg(long, value_name = "NAME")]
    pub allow_env: Vec<String>,
    /// Linear-memory cap, e.g. `512MiB`.
    #[arg(long, value_parser = parse_byte_size)]
    pub memory: Option<u64>,
    /// Wall-clock budget of the whole run, e.g. `30m`.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

impl GrantArgs {
    pub fn permissions(&self) -> Permissions {
        let files = self
            .allow_read
            .iter()
            .map(|p| (p.clone(), Access::Read))
            .chain(self.allow_write.iter().map(|p| (p.clone(), Access::Write)))
            .collect();
        Permissions {
            network: self.allow_net.clone(),
            files,
            env: self.allow_env.clone(),
            memory: self.memory,
            timeout: self.timeout,
        }
    }
}

pub async fn run(args: ServeCommand) -> Result<Exit, CliError> {
    match serve(&args).await {
        Ok(()) => Ok(Exit::Ok),
        Err((exit, message)) => {
            tracing::error!("{message}");
            Err(match exit {
                Exit::Config => CliError::Usage(message),
                _ => CliError::Runtime(anyhow::Error::msg(message)),
            })
        }
    }
}

async fn serve(args: &ServeCommand) -> Result<(), (Exit, String)> {
    let config = |m: String| (Exit::Config, m);
    let env = Environment::from_process().map_err(|e| (Exit::Failure, format!("{e:#}")))?;
    let artifact = match env.resolve_reference(&args.plugin).await {
        Ok(Resolved::Component(artifact)) => artifact,
        Ok(_) => {
            return Err(config(format!(
                "`{}` is a native plugin: run its own executable with `serve`",
                args.plugin
            )));
        }
        Err(e) => return Err(config(e)),
    };
    let grants =
        Grants::resolve(&args.grants.permissions(), &env.cwd).map_err(|e| config(e.to_string()))?;
    let name = Path::new(&args.plugin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.plugin.clone());
    let loaded = env
        .runtime
        .load_hashed(&name, &artifact.bytes, artifact.sha256.clone())
        .map_err(|e| (Exit::Failure, e.to_string()))?;
    let instance = env
        .runtime
        .start(&loaded, &name, &grants)
        .await
        .map_err(|e| (Exit::Failure, e.to_string()))?;
    let served = WasmServed {
        info: instance.info().clone(),
        runtime: Arc::new(env.runtime),
        loaded,
        name,
        grants,
        state: Mutex::new(State {
            instance,
            initialised: false,
            used: false,
        }),
    };
    quarry_grpc::serve::serve(served, &args.serve)
        .await
        .map_err(|e| (Exit::Failure, e))
}

/// A wasm plugin behind the v3 server: one instance at a time, in its sandbox.
struct WasmServed {
    info: PluginInfo,
    runtime: Arc<WasmRuntime>,
    loaded: Arc<LoadedComponent>,
    name: String,
    grants: Grants,
    state: Mutex<State>,
}

struct State {
    instance: WasmPlugin,
    initialised: bool,
    /// The instance was initialised or closed before: the next Init needs a fresh one.
    used: bool,
}

/// A status that keeps the error's kind in its code and its help in its message.
fn status(e: PluginError) -> Status {
    // The client names the plugin and the call itself.
    let mut message = match &e.table {
        Some(table) => format!("table `{table}`: {}", e.message),
        None => e.message.clone(),
    };
    if let Some(help) = &e.help {
        message.push_str(&format!(" (help: {help})"));
    }
    // The sandbox's own kinds have no plugin kind; they get the nearest code.
    let code = match e.kind {
        ErrorKind::Plugin(kind) => quarry_grpc::code::code(kind),
        ErrorKind::MemoryLimit => Code::ResourceExhausted,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::Trap | ErrorKind::Load => Code::Internal,
    };
    Status::new(code, message)
}

fn table_selection(s: Selection) -> TableSelection {
    TableSelection {
        tables: s.tables,
        skip_tables: s.skip_tables,
        skip_dependent_tables: s.skip_dependent_tables,
    }
}

impl WasmServed {
    async fn initialised(&self) -> Result<tokio::sync::MutexGuard<'_, State>, Status> {
        let state = self.state.lock().await;
        if state.initialised {
            Ok(state)
        } else {
            Err(Status::failed_precondition(
                "the plugin was called before Init",
            ))
        }
    }
}

#[async_trait::async_trait]
impl Served for WasmServed {
    fn name(&self) -> String {
        self.info.name.clone()
    }

    fn version(&self) -> String {
        self.info.version.clone()
    }

    async fn spec_schema(&self) -> Result<Option<String>, Status> {
        self.state
            .lock()
            .await
            .instance
            .spec_schema()
            .await
            .map_err(status)
    }

    async fn init(&self, spec: serde_json::Value, _no_connection: bool) -> Result<(), Status> {
        let mut state = self.state.lock().await;
        if state.used {
            // A second Init starts over in a fresh sandbox.
            if state.initialised {
                let _ = state.instance.close().await;
            }
            state.instance = self
                .runtime
                .start(&self.loaded, &self.name, &self.grants)
                .await
                .map_err(status)?;
            state.initialised = false;
        }
        state
            .instance
            .init(spec.to_string())
            .await
            .map_err(status)?;
        state.initialised = true;
        state.used = true;
        Ok(())
    }

    async fn tables(&self, selection: Selection) -> Result<Vec<SchemaRef>, Status> {
        let mut state = self.initialised().await?;
        if !self.info.source {
            return Ok(Vec::new());
        }
        state
            .instance
            .tables(&table_selection(selection))
            .await
            .map_err(status)
    }

    async fn sync(
        &self,
        selection: Selection,
        deterministic_cq_id: bool,
        backend: Option<quarry_grpc::state_client::Backend>,
        out: mpsc::Sender<SyncMessage>,
    ) -> Result<(), Status> {
        let mut state = self.initialised().await?;
        // The cursors the CLI's backend holds go in; the ones the component sets go back there
        // once its sync has ended cleanly (as CloudQuery's SDKs save them: after the rows).
        let (mut client, cursors) = match &backend {
            Some(backend) => {
                let (client, cursors) = quarry_grpc::state_client::StateClient::open(backend)
                    .await
                    .map_err(Status::unavailable)?;
                (Some(client), cursors)
            }
            None => (None, Default::default()),
        };
        let input = SyncInput {
            table: backend.map(|b| b.table_name),
            cursors,
            shard: None,
        };
        let mut changed = std::collections::BTreeMap::new();
        let (tx, mut rx) = mpsc::channel::<SourceMessage>(4);
        let forward = async {
            while let Some(message) = rx.recv().await {
                let message = match message {
                    SourceMessage::MigrateTable(schema) => SyncMessage::MigrateTable(schema),
                    SourceMessage::Insert { batch, .. } => SyncMessage::Insert(batch),
                    SourceMessage::DeleteRecord(request) => SyncMessage::DeleteRecord(request),
                    SourceMessage::TableError { table, message } => {
                        SyncMessage::Error { table, message }
                    }
                    SourceMessage::State { key, value } => {
                        changed.insert(key, value);
                        continue;
                    }
                };
                if out.send(message).await.is_err() {
                    break;
                }
            }
        };
        let selection = table_selection(selection);
        let (synced, ()) = tokio::join!(
            state
                .instance
                .sync(&selection, deterministic_cq_id, input, tx),
            forward
        );
        synced.map_err(status)?;
        if let Some(client) = &mut client {
            client.save(&changed).await.map_err(Status::unavailable)?;
        }
        Ok(())
    }

    async fn read(&self, table: SchemaRef) -> Result<Vec<RecordBatch>, Status> {
        let mut state = self.initialised().await?;
        state.instance.read(&table).await.map_err(status)
    }

    async fn write(&self, message: WriteMessage) -> Result<(), Status> {
        let mut state = self.initialised().await?;
        let instance = &mut state.instance;
        match message {
            WriteMessage::MigrateTable { schema, force } => {
                instance.migrate_table(&schema, force).await
            }
            WriteMessage::Insert(batch) => instance.insert(&batch).await,
            WriteMessage::DeleteStale {
                table,
                source_name,
                sync_time_us,
            } => {
                instance
                    .delete_stale(&table, &source_name, sync_time_us)
                    .await
            }
            WriteMessage::DeleteRecord(request) => instance.delete_record(&request).await,
        }
        .map_err(status)
    }

    async fn flush(&self) -> Result<(), Status> {
        let mut state = self.initialised().await?;
        state.instance.flush().await.map_err(status)
    }

    async fn close(&self) -> Result<(), Status> {
        let mut state = self.state.lock().await;
        if !state.initialised {
            return Ok(());
        }
        state.initialised = false;
        if self.info.destination {
            state.instance.flush().await.map_err(status)?;
        }
        state.instance.close().await.map_err(status)
    }

    async fn transform_schema(&self, schema: SchemaRef) -> Result<SchemaRef, Status> {
        let mut state = self.initialised().await?;
        state
            .instance
            .transform_schema(&schema)
            .await
            .map_err(status)
    }

    async fn transform(&self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Status> {
        let mut state = self.initialised().await?;
        state.instance.transform(&batch).await.map_err(status)
    }
}
