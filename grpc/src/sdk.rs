//! A destination written with `quarry-sdk`, served as a native process: the same trait a wasm
//! plugin implements, behind the same v3 server. Native plugins exist for what cannot run in the
//! sandbox (DuckDB is a C++ library); they are not sandboxed.
//!
//! A native plugin's `main` is one line: `quarry_grpc::sdk::main::<MyDestination>()`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use clap::Parser;
use quarry_sdk::{Destination, Table};
use tokio::sync::mpsc;
use tonic::Status;

use crate::serve::{Selection, ServeArgs, Served, SyncMessage, WriteMessage};

/// A status for an SDK error, with a code that keeps its kind.
pub fn status(e: quarry_sdk::Error) -> Status {
    Status::new(crate::code::code(e.kind), e.message)
}

struct Instance<P> {
    plugin: P,
    tables: HashMap<String, Table>,
}

/// A `quarry-sdk` destination as a [`Served`] plugin. Calls run on the blocking pool, one at a
/// time.
pub struct NativeDestination<P> {
    instance: Arc<Mutex<Option<Instance<P>>>>,
}

impl<P> Default for NativeDestination<P> {
    fn default() -> Self {
        NativeDestination {
            instance: Arc::new(Mutex::new(None)),
        }
    }
}

impl<P: Destination + Send> NativeDestination<P> {
    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Instance<P>) -> quarry_sdk::Result<R> + Send + 'static,
    ) -> Result<R, Status> {
        let instance = self.instance.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = instance
                .lock()
                .map_err(|_| Status::internal("an earlier call panicked"))?;
            let instance = guard
                .as_mut()
                .ok_or_else(|| Status::failed_precondition("the plugin was called before Init"))?;
            f(instance).map_err(status)
        })
        .await
        .map_err(|e| Status::internal(format!("the plugin panicked: {e}")))?
    }
}

fn table_of(tables: &HashMap<String, Table>, schema: &SchemaRef) -> quarry_sdk::Result<Table> {
    match tables.get(quarry_sdk::table_name(schema)) {
        Some(table) => Ok(table.clone()),
        None => Table::from_schema(schema),
    }
}

#[async_trait::async_trait]
impl<P: Destination + Send> Served for NativeDestination<P> {
    fn name(&self) -> String {
        P::info().name
    }

    fn version(&self) -> String {
        P::info().version
    }

    async fn spec_schema(&self) -> Result<Option<String>, Status> {
        Ok(serde_json::to_string(&schemars::schema_for!(P::Spec)).ok())
    }

    async fn init(&self, spec: serde_json::Value, _no_connection: bool) -> Result<(), Status> {
        let instance = self.instance.clone();
        tokio::task::spawn_blocking(move || {
            let spec: P::Spec = serde_json::from_value(spec)
                .map_err(|e| Status::invalid_argument(format!("spec: {e}")))?;
            let plugin = P::new(spec).map_err(status)?;
            let mut guard = instance
                .lock()
                .map_err(|_| Status::internal("an earlier call panicked"))?;
            if let Some(mut old) = guard.take() {
                old.plugin.close().map_err(status)?;
            }
            *guard = Some(Instance {
                plugin,
                tables: HashMap::new(),
            });
            Ok(())
        })
        .await
        .map_err(|e| Status::internal(format!("the plugin panicked: {e}")))?
    }

    async fn tables(&self, _: Selection) -> Result<Vec<SchemaRef>, Status> {
        Ok(Vec::new())
    }

    async fn sync(
        &self,
        _: Selection,
        _: bool,
        _: Option<crate::state_client::Backend>,
        _: mpsc::Sender<SyncMessage>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented(format!(
            "{} is a destination, not a source",
            P::info().name
        )))
    }

    async fn read(&self, schema: SchemaRef) -> Result<Vec<RecordBatch>, Status> {
        self.with(move |i| {
            let table = table_of(&i.tables, &schema)?;
            i.plugin.read(&table)
        })
        .await
    }

    async fn write(&self, message: WriteMessage) -> Result<(), Status> {
        self.with(move |i| match message {
            WriteMessage::MigrateTable { schema, force } => {
                let table = Table::from_schema(&schema)?;
                i.plugin.migrate_table(&table, force)?;
                i.tables.insert(table.name.clone(), table);
                Ok(())
            }
            WriteMessage::Insert(batch) => {
                let table = table_of(&i.tables, &batch.schema())?;
                i.plugin.insert(&table, batch)
            }
            WriteMessage::DeleteStale {
                table,
                source_name,
                sync_time_us,
            } => i.plugin.delete_stale(&table, &source_name, sync_time_us),
            WriteMessage::DeleteRecord(request) => i.plugin.delete_record(&request),
        })
        .await
    }

    async fn flush(&self) -> Result<(), Status> {
        self.with(|i| i.plugin.flush()).await
    }

    async fn close(&self) -> Result<(), Status> {
        let instance = self.instance.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = instance
                .lock()
                .map_err(|_| Status::internal("an earlier call panicked"))?;
            match guard.take() {
                Some(mut i) => {
                    i.plugin.flush().map_err(status)?;
                    i.plugin.close().map_err(status)
                }
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| Status::internal(format!("the plugin panicked: {e}")))?
    }
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Serve the plugin over gRPC (CloudQuery plugin protocol v3).
    Serve {
        #[command(flatten)]
        args: ServeArgs,
        #[arg(long, default_value = "info", value_parser = ["trace", "debug", "info", "warn", "error"])]
        log_level: String,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
    },
}

/// The `main` of a native destination: `serve` with CloudQuery's flags.
pub fn main<P: Destination + Send>() -> std::process::ExitCode {
    let Command::Serve {
        args,
        log_level,
        log_format,
    } = Cli::parse().command;
    crate::serve::init_logging(&log_level, log_format == "json");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::serve::serve(
        NativeDestination::<P>::default(),
        &args,
    )) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
