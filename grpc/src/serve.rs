//! A CloudQuery v3 plugin server for anything that implements [`Served`], and the `serve`
//! command line that CloudQuery's CLI passes to every plugin it starts.
//!
//! One implementation serves every Quarry plugin: `quarry serve` wraps a sandboxed wasm plugin,
//! a native plugin wraps its `quarry-sdk` implementation ([`crate::sdk`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use quarry_sdk::DeleteRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::payload::{self, PayloadError};
use crate::pb::discovery_v0 as v0;
use crate::pb::discovery_v1 as v1;
use crate::pb::plugin as pb;
use crate::{MAX_MESSAGE_BYTES, MAX_RECORD_BYTES, PROTOCOL_VERSION};

/// Which tables to sync.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tables: Vec<String>,
    pub skip_tables: Vec<String>,
    pub skip_dependent_tables: bool,
}

/// A message from a served source.
#[derive(Debug)]
pub enum SyncMessage {
    MigrateTable(SchemaRef),
    Insert(RecordBatch),
    DeleteRecord(DeleteRequest),
    /// A table failed; the sync goes on with the others.
    Error {
        table: String,
        message: String,
    },
}

/// A message to a served destination.
#[derive(Debug)]
pub enum WriteMessage {
    MigrateTable {
        schema: SchemaRef,
        force: bool,
    },
    Insert(RecordBatch),
    DeleteStale {
        table: String,
        source_name: String,
        sync_time_us: i64,
    },
    DeleteRecord(DeleteRequest),
}

/// A plugin as the server sees it. Calls arrive in protocol order (GetSpecSchema may come
/// before Init, everything else after); the server never runs two calls of one plugin at once.
#[async_trait::async_trait]
pub trait Served: Send + Sync + 'static {
    fn name(&self) -> String;
    fn version(&self) -> String;
    /// The JSON Schema of the plugin's spec, if it has one.
    async fn spec_schema(&self) -> Result<Option<String>, Status>;
    async fn init(&self, spec: serde_json::Value, no_connection: bool) -> Result<(), Status>;
    async fn tables(&self, selection: Selection) -> Result<Vec<SchemaRef>, Status>;
    /// `backend` is the state backend the client names (`backend_options`), if any.
    async fn sync(
        &self,
        selection: Selection,
        deterministic_cq_id: bool,
        backend: Option<crate::state_client::Backend>,
        out: mpsc::Sender<SyncMessage>,
    ) -> Result<(), Status>;
    async fn read(&self, table: SchemaRef) -> Result<Vec<RecordBatch>, Status>;
    async fn write(&self, message: WriteMessage) -> Result<(), Status>;
    /// Everything written so far is durable once this returns ok.
    async fn flush(&self) -> Result<(), Status>;
    async fn close(&self) -> Result<(), Status>;
    /// A transformer's output schema for input of `schema`.
    async fn transform_schema(&self, schema: SchemaRef) -> Result<SchemaRef, Status> {
        let _ = schema;
        Err(Status::unimplemented(format!(
            "{} is not a transformer",
            self.name()
        )))
    }
    /// A transformer's output for one batch (none drops its rows).
    async fn transform(&self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Status> {
        let _ = batch;
        Err(Status::unimplemented(format!(
            "{} is not a transformer",
            self.name()
        )))
    }
}

/// The v3 service over a [`Served`] plugin.
pub struct PluginService<P> {
    plugin: std::sync::Arc<P>,
}

impl<P: Served> PluginService<P> {
    pub fn new(plugin: std::sync::Arc<P>) -> Self {
        PluginService { plugin }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn selection(tables: Vec<String>, skip_tables: Vec<String>, skip_dependent: bool) -> Selection {
    Selection {
        tables,
        skip_tables,
        skip_dependent_tables: skip_dependent,
    }
}

fn sync_response(message: pb::sync::response::Message) -> pb::sync::Response {
    pb::sync::Response {
        message: Some(message),
    }
}

/// Protocol messages for one sync message: an insert may become several records.
fn encode_sync_message(
    message: SyncMessage,
    with_errors: bool,
) -> Result<Vec<pb::sync::Response>, PayloadError> {
    use pb::sync::response::Message as M;
    Ok(match message {
        SyncMessage::MigrateTable(schema) => {
            vec![sync_response(M::MigrateTable(
                pb::sync::MessageMigrateTable {
                    table: payload::encode_schema(&schema)?,
                },
            ))]
        }
        SyncMessage::Insert(batch) => payload::encode_records(&batch, MAX_RECORD_BYTES)?
            .into_iter()
            .map(|record| sync_response(M::Insert(pb::sync::MessageInsert { record })))
            .collect(),
        SyncMessage::DeleteRecord(request) => {
            vec![sync_response(M::DeleteRecord(
                pb::sync::MessageDeleteRecord {
                    where_clause: payload::delete_request_to_pb(&request)?,
                    table_name: request.table,
                    table_relations: Vec::new(),
                },
            ))]
        }
        SyncMessage::Error { table, message } if with_errors => {
            vec![sync_response(M::Error(pb::sync::MessageError {
                table_name: table,
                error: message,
            }))]
        }
        SyncMessage::Error { table, message } => {
            tracing::error!(table = %table, "{message}");
            Vec::new()
        }
    })
}

fn write_message(request: pb::write::Request) -> Result<Option<WriteMessage>, Status> {
    use pb::write::request::Message as M;
    Ok(match request.message {
        None => None,
        Some(M::MigrateTable(m)) => Some(WriteMessage::MigrateTable {
            schema: payload::decode_schema(m.table)?,
            force: m.migrate_force,
        }),
        Some(M::Insert(m)) => Some(WriteMessage::Insert(payload::decode_record(m.record)?)),
        Some(M::Delete(m)) => {
            let table = if m.table_name.is_empty() && !m.table.is_empty() {
                // Older clients send the table's schema instead of its name.
                let schema = payload::decode_schema(m.table)?;
                quarry_sdk::table_name(&schema).to_string()
            } else {
                m.table_name
            };
            let sync_time_us = m
                .sync_time
                .map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000)
                .ok_or_else(|| Status::invalid_argument("delete-stale without a sync_time"))?;
            Some(WriteMessage::DeleteStale {
                table,
                source_name: m.source_name,
                sync_time_us,
            })
        }
        Some(M::DeleteRecord(m)) => Some(WriteMessage::DeleteRecord(
            payload::delete_request_from_pb(m.table_name, m.where_clause)?,
        )),
        // Flush is handled by the stream that received it.
        Some(M::Flush(_)) => None,
    })
}

#[tonic::async_trait]
impl<P: Served> pb::plugin_server::Plugin for PluginService<P> {
    async fn get_name(
        &self,
        _: Request<pb::get_name::Request>,
    ) -> Result<Response<pb::get_name::Response>, Status> {
        Ok(Response::new(pb::get_name::Response {
            name: self.plugin.name(),
        }))
    }

    async fn get_version(
        &self,
        _: Request<pb::get_version::Request>,
    ) -> Result<Response<pb::get_version::Response>, Status> {
        Ok(Response::new(pb::get_version::Response {
            version: self.plugin.version(),
        }))
    }

    async fn get_spec_schema(
        &self,
        _: Request<pb::get_spec_schema::Request>,
    ) -> Result<Response<pb::get_spec_schema::Response>, Status> {
        Ok(Response::new(pb::get_spec_schema::Response {
            json_schema: self.plugin.spec_schema().await?,
        }))
    }

    async fn init(
        &self,
        request: Request<pb::init::Request>,
    ) -> Result<Response<pb::init::Response>, Status> {
        let request = request.into_inner();
        let spec = if request.spec.is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_slice(&request.spec)
                .map_err(|e| Status::invalid_argument(format!("the spec is not JSON: {e}")))?
        };
        self.plugin.init(spec, request.no_connection).await?;
        Ok(Response::new(pb::init::Response {
            supports_flush: true,
        }))
    }

    async fn get_tables(
        &self,
        request: Request<pb::get_tables::Request>,
    ) -> Result<Response<pb::get_tables::Response>, Status> {
        let r = request.into_inner();
        let schemas = self
            .plugin
            .tables(selection(r.tables, r.skip_tables, r.skip_dependent_tables))
            .await?;
        let tables = schemas
            .iter()
            .map(payload::encode_schema)
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::get_tables::Response { tables }))
    }

    type SyncStream = BoxStream<pb::sync::Response>;

    async fn sync(
        &self,
        request: Request<pb::sync::Request>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let r = request.into_inner();
        let with_errors = r.with_error_messages;
        let selection = selection(r.tables, r.skip_tables, r.skip_dependent_tables);
        let (tx, mut rx) = mpsc::channel::<SyncMessage>(16);
        let (out_tx, out_rx) = mpsc::channel::<Result<pb::sync::Response, Status>>(16);
        let plugin = self.plugin.clone();
        let deterministic = r.deterministic_cq_id;
        let backend = r
            .backend
            .filter(|b| !b.table_name.is_empty() && !b.connection.is_empty())
            .map(|b| crate::state_client::Backend {
                table_name: b.table_name,
                connection: b.connection,
            });
        let producer =
            tokio::spawn(async move { plugin.sync(selection, deterministic, backend, tx).await });
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                let responses = match encode_sync_message(message, with_errors) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = out_tx.send(Err(Status::internal(e.0))).await;
                        return;
                    }
                };
                for response in responses {
                    if out_tx.send(Ok(response)).await.is_err() {
                        // The client went away; dropping `rx` stops the producer.
                        return;
                    }
                }
            }
            let ended = match producer.await {
                Ok(Ok(())) => return,
                Ok(Err(status)) => status,
                Err(e) => Status::internal(format!("the sync task failed: {e}")),
            };
            let _ = out_tx.send(Err(ended)).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    type ReadStream = BoxStream<pb::read::Response>;

    async fn read(
        &self,
        request: Request<pb::read::Request>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let schema = payload::decode_schema(request.into_inner().table)?;
        let batches = self.plugin.read(schema).await?;
        let mut records = Vec::new();
        for batch in &batches {
            for record in payload::encode_records(batch, MAX_RECORD_BYTES)? {
                records.push(Ok(pb::read::Response { record }));
            }
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(records))))
    }

    async fn write(
        &self,
        request: Request<Streaming<pb::write::Request>>,
    ) -> Result<Response<pb::write::Response>, Status> {
        let mut stream = request.into_inner();
        while let Some(request) = stream.next().await {
            let request = request?;
            if let Some(pb::write::request::Message::Flush(_)) = request.message {
                self.plugin.flush().await?;
                continue;
            }
            if let Some(message) = write_message(request)? {
                self.plugin.write(message).await?;
            }
        }
        self.plugin.flush().await?;
        Ok(Response::new(pb::write::Response::default()))
    }

    type WriteStreamStream = BoxStream<pb::write::Response>;

    async fn write_stream(
        &self,
        request: Request<Streaming<pb::write::Request>>,
    ) -> Result<Response<Self::WriteStreamStream>, Status> {
        let mut stream = request.into_inner();
        let plugin = self.plugin.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let outcome: Result<(), Status> = async {
                while let Some(request) = stream.next().await {
                    let request = request?;
                    if let Some(pb::write::request::Message::Flush(flush)) = &request.message {
                        let flush_error = match plugin.flush().await {
                            Ok(()) => String::new(),
                            Err(e) => e.message().to_string(),
                        };
                        let response = pb::write::Response {
                            flush_id: flush.id,
                            flush_error,
                            failed_tables: Vec::new(),
                        };
                        if tx.send(Ok(response)).await.is_err() {
                            return Ok(());
                        }
                        continue;
                    }
                    if let Some(message) = write_message(request)? {
                        plugin.write(message).await?;
                    }
                }
                plugin.flush().await
            }
            .await;
            if let Err(status) = outcome {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type TransformStream = BoxStream<pb::transform::Response>;

    /// Each record in is transformed as it comes; its output records go out before the next
    /// is read. The stream ends when the client half-closes it; the first error ends it with that
    /// error (CloudQuery's SDK answers `Internal`).
    async fn transform(
        &self,
        request: Request<Streaming<pb::transform::Request>>,
    ) -> Result<Response<Self::TransformStream>, Status> {
        let mut stream = request.into_inner();
        let plugin = self.plugin.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let outcome: Result<(), Status> = async {
                while let Some(request) = stream.next().await {
                    let batch = payload::decode_record(request?.record)?;
                    for out in plugin.transform(batch).await? {
                        for record in payload::encode_records(&out, MAX_RECORD_BYTES)? {
                            if tx
                                .send(Ok(pb::transform::Response { record }))
                                .await
                                .is_err()
                            {
                                return Ok(());
                            }
                        }
                    }
                }
                Ok(())
            }
            .await;
            if let Err(status) = outcome {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn transform_schema(
        &self,
        request: Request<pb::transform_schema::Request>,
    ) -> Result<Response<pb::transform_schema::Response>, Status> {
        let schema = payload::decode_schema(request.into_inner().schema)?;
        let schema = self.plugin.transform_schema(schema).await?;
        Ok(Response::new(pb::transform_schema::Response {
            schema: payload::encode_schema(&schema)?,
        }))
    }

    async fn close(
        &self,
        _: Request<pb::close::Request>,
    ) -> Result<Response<pb::close::Response>, Status> {
        self.plugin.close().await?;
        Ok(Response::new(pb::close::Response {}))
    }

    async fn test_connection(
        &self,
        request: Request<pb::test_connection::Request>,
    ) -> Result<Response<pb::test_connection::Response>, Status> {
        let spec =
            serde_json::from_slice(&request.into_inner().spec).unwrap_or(serde_json::Value::Null);
        let response = match self.plugin.init(spec, false).await {
            Ok(()) => pb::test_connection::Response {
                success: true,
                ..Default::default()
            },
            Err(e) => pb::test_connection::Response {
                success: false,
                failure_code: format!("{:?}", e.code()),
                failure_description: e.message().to_string(),
            },
        };
        Ok(Response::new(response))
    }
}

struct Discovery;

#[tonic::async_trait]
impl v1::discovery_server::Discovery for Discovery {
    async fn get_versions(
        &self,
        _: Request<v1::get_versions::Request>,
    ) -> Result<Response<v1::get_versions::Response>, Status> {
        Ok(Response::new(v1::get_versions::Response {
            versions: vec![PROTOCOL_VERSION],
        }))
    }
}

#[tonic::async_trait]
impl v0::discovery_server::Discovery for Discovery {
    async fn get_versions(
        &self,
        _: Request<v0::get_versions::Request>,
    ) -> Result<Response<v0::get_versions::Response>, Status> {
        Ok(Response::new(v0::get_versions::Response {
            versions: vec![format!("v{PROTOCOL_VERSION}")],
        }))
    }
}

/// How a served plugin listens: a Unix socket or a TCP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Network {
    Unix,
    Tcp,
    Tcp4,
    Tcp6,
}

/// The `serve` arguments CloudQuery's CLI passes to a plugin it starts. Log level and format are
/// the caller's own (quarry's are global flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Where to listen: a socket path for `--network unix`, `host:port` for tcp.
    #[arg(long, default_value = "localhost:7777")]
    pub address: String,
    #[arg(long, value_enum, default_value_t = Network::Tcp)]
    pub network: Network,
    /// Accepted for compatibility with CloudQuery's CLI; Quarry sends no error reports.
    #[arg(long)]
    pub no_sentry: bool,
    /// Accepted for compatibility; ignored.
    #[arg(long, value_name = "URL")]
    pub otel_endpoint: Option<String>,
    /// Accepted for compatibility; ignored.
    #[arg(long)]
    pub otel_endpoint_insecure: bool,
    /// Accepted for compatibility; ignored.
    #[arg(long, value_name = "FILE")]
    pub license: Option<String>,
}

/// The v3 plugin service and both discovery services over `plugin`.
fn router<P: Served>(plugin: std::sync::Arc<P>) -> tonic::transport::server::Router {
    let service = pb::plugin_server::PluginServer::new(PluginService::new(plugin))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(service)
        .add_service(v1::discovery_server::DiscoveryServer::new(Discovery))
        .add_service(v0::discovery_server::DiscoveryServer::new(Discovery))
}

/// A server of `plugin` for this process's own children: on a Unix socket in a new directory
/// only this user can enter, running until [`Local::stop`] (or until dropped, which also
/// removes the directory).
pub struct Local {
    /// What a gRPC client dials: `unix:///.../plugin.sock`.
    pub connection: String,
    dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Local {
    pub async fn start<P: Served>(plugin: std::sync::Arc<P>) -> Result<Local, String> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "quarry-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // `create` fails on a directory someone else made: never serve from one.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("plugin.sock");
        let listener = match tokio::net::UnixListener::bind(&path) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("cannot listen on {}: {e}", path.display()));
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // Through the relay that fixes grpc-go's socket-path authority, as `serve` does.
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener)
            .map(|accepted| accepted.map(crate::authority::relay));
        let task = tokio::spawn(
            router(plugin).serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            }),
        );
        Ok(Local {
            connection: format!("unix://{}", path.display()),
            dir,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// Stops taking calls and gives the calls under way a few seconds to end (a client that
    /// keeps a stream open is cut off then).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(std::time::Duration::from_secs(5), &mut task).await {
                Ok(Ok(Err(e))) => tracing::debug!("the local plugin server failed: {e}"),
                Ok(_) => {}
                Err(_) => task.abort(),
            }
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Serves `plugin` until SIGINT or SIGTERM, or until the listener fails.
pub async fn serve<P: Served>(plugin: P, args: &ServeArgs) -> Result<(), String> {
    let plugin = std::sync::Arc::new(plugin);
    let name = plugin.name();
    let router = router(plugin);
    let stop = stop_signal();
    match args.network {
        Network::Unix => {
            let path = PathBuf::from(&args.address);
            // A socket left by a killed run would make bind fail; anything else at that path is
            // someone's file, and is never removed.
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                use std::os::unix::fs::FileTypeExt;
                if !meta.file_type().is_socket() {
                    return Err(format!(
                        "cannot listen on {}: a file that is not a socket is there; choose another --address",
                        path.display()
                    ));
                }
                let _ = std::fs::remove_file(&path);
            }
            let listener = tokio::net::UnixListener::bind(&path)
                .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
            tracing::info!(address = %args.address, plugin = %name, "Plugin server listening");
            // Every connection through the relay that fixes grpc-go's socket-path authority.
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener)
                .map(|accepted| accepted.map(crate::authority::relay));
            let served = router.serve_with_incoming_shutdown(incoming, stop).await;
            let _ = std::fs::remove_file(&path);
            served.map_err(|e| format!("the plugin server failed: {e}"))?;
        }
        Network::Tcp | Network::Tcp4 | Network::Tcp6 => {
            let addr = resolve_tcp(&args.address, args.network).await?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            tracing::info!(address = %addr, plugin = %name, "Plugin server listening");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            router
                .serve_with_incoming_shutdown(incoming, stop)
                .await
                .map_err(|e| format!("the plugin server failed: {e}"))?;
        }
    }
    Ok(())
}

async fn resolve_tcp(address: &str, network: Network) -> Result<SocketAddr, String> {
    let addrs = tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("cannot resolve `{address}`: {e}"))?;
    addrs
        .into_iter()
        .find(|a| match network {
            Network::Tcp4 => a.is_ipv4(),
            Network::Tcp6 => a.is_ipv6(),
            _ => true,
        })
        .ok_or_else(|| format!("`{address}` has no {network:?} address"))
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("Got stop signal, the plugin server is stopping");
}

/// Log lines on standard output, which is where CloudQuery's CLI (and Quarry) read a plugin's
/// logs. As JSON, each line is an object with a lowercase `level`, the `message` and the event's
/// fields, as CloudQuery's Go plugins write them. `filter` is a `tracing` filter such as `info`.
pub fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::new(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_target(false);
    let _ = if json {
        builder.event_format(JsonLines).try_init()
    } else {
        builder.compact().try_init()
    };
}

/// One JSON object per event: `level` (lowercase), `message`, then the fields.
struct JsonLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields(serde_json::Map::new());
        fields.0.insert(
            "level".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        event.record(&mut fields);
        writeln!(writer, "{}", serde_json::Value::Object(fields.0))
    }
}

struct Fields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}
