#![allow(missing_docs, reason = "macro glue, hidden from the docs")]
//! The glue between the WIT exports and a plugin's traits: one instance per component, created by
//! `init`, with Arrow decoded and encoded at the boundary. The export macros at the bottom expand
//! into trait impls in the plugin's crate that call these functions.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;

use crate::bindings::quarry::plugin::types as wit;
use crate::{
    DeleteRequest, Destination, Error, Grouping, Message, Plugin, Predicate, PredicateGroup,
    Result, Source, SyncOptions, Table, Transformer, ipc,
};

thread_local! {
    /// The plugin instance and the tables a destination has been told about. A component
    /// instance is single-threaded and holds exactly one plugin.
    static STATE: RefCell<Option<Instance>> = const { RefCell::new(None) };
}

struct Instance {
    plugin: Box<dyn Any>,
    tables: HashMap<String, Table>,
}

fn with_plugin<P: Plugin, R>(
    f: impl FnOnce(&mut P, &mut HashMap<String, Table>) -> Result<R>,
) -> Result<R> {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let instance = state
            .as_mut()
            .ok_or_else(|| Error::internal("the plugin was called before init"))?;
        let plugin = instance
            .plugin
            .downcast_mut::<P>()
            .ok_or_else(|| Error::internal("the plugin instance has an unexpected type"))?;
        f(plugin, &mut instance.tables)
    })
}

impl From<Error> for wit::Error {
    fn from(e: Error) -> Self {
        wit::Error {
            kind: e.kind.into(),
            message: e.message,
        }
    }
}

impl From<wit::Error> for Error {
    fn from(e: wit::Error) -> Self {
        Error {
            kind: e.kind.into(),
            message: e.message,
        }
    }
}

/// Which sides of the contract a plugin implements (a transformer: neither).
#[derive(Clone, Copy)]
pub struct Kinds {
    pub source: bool,
    pub destination: bool,
}

pub fn info<P: Plugin>(kinds: Kinds) -> wit::PluginInfo {
    let info = P::info();
    let mut k = Vec::new();
    if kinds.source {
        k.push(wit::PluginKind::Source);
    }
    if kinds.destination {
        k.push(wit::PluginKind::Destination);
    }
    wit::PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        kinds: k,
        needs: wit::PermissionNeeds {
            network: info.network,
            files: info.files,
            env: info.env,
        },
        write_modes: if kinds.destination {
            info.write_modes.into_iter().map(Into::into).collect()
        } else {
            Vec::new()
        },
        batch_rows: info.batch_rows,
        batch_bytes: info.batch_bytes,
    }
}

pub fn spec_schema<P: Plugin>() -> String {
    serde_json::to_string(&schemars::schema_for!(P::Spec)).unwrap_or_else(|_| "true".into())
}

pub fn init<P: Plugin>(spec: String) -> Result<(), wit::Error> {
    let spec: P::Spec = serde_json::from_str(if spec.trim().is_empty() { "{}" } else { &spec })
        .map_err(|e| Error::invalid_spec(format!("spec: {e}")))?;
    let plugin = P::new(spec)?;
    STATE.with(|s| {
        *s.borrow_mut() = Some(Instance {
            plugin: Box::new(plugin),
            tables: HashMap::new(),
        })
    });
    Ok(())
}

pub fn test_connection<P: Plugin>() -> Result<(), wit::Error> {
    Ok(with_plugin::<P, _>(|p, _| p.test_connection())?)
}

pub fn close<P: Plugin>() -> Result<(), wit::Error> {
    let result = with_plugin::<P, _>(|p, _| p.close());
    STATE.with(|s| s.borrow_mut().take());
    Ok(result?)
}

pub fn tables<P: Source>(options: wit::TableOptions) -> Result<Vec<Vec<u8>>, wit::Error> {
    Ok(with_plugin::<P, _>(|p, _| {
        crate::select_tables(
            &p.discover()?,
            &options.tables,
            &options.skip_tables,
            options.skip_dependent_tables,
        )?
        .iter()
        .map(|t| ipc::encode_schema(&crate::cq_id::with_id_columns(t).schema()))
        .collect()
    })?)
}

/// The largest Arrow stream one `sink.emit` carries: half of what wasmtime copies out of a guest
/// in one call by default (128 MiB), so the call's other arguments always fit.
const MAX_EMIT_BYTES: usize = 64 << 20;

/// Sends a source's messages to the host's `sink.emit`, encoding Arrow at the boundary.
struct HostSink;

impl crate::sync::Sink for HostSink {
    fn emit(&mut self, message: Message) -> Result<()> {
        let message = match message {
            Message::MigrateTable(table) => {
                wit::SyncMessage::MigrateTable(ipc::encode_schema(&table.schema())?)
            }
            Message::Insert(batch) => {
                // The host copies at most 128 MiB out of a guest in one call (wasmtime's
                // hostcall fuel): a larger batch goes as several, rows in order.
                for bytes in ipc::encode_batch_within(&batch, MAX_EMIT_BYTES)? {
                    crate::bindings::quarry::plugin::sink::emit(&wit::SyncMessage::Insert(bytes))
                        .map_err(Error::from)?;
                }
                return Ok(());
            }
            Message::DeleteRecord(request) => {
                wit::SyncMessage::DeleteRecord(delete_request_to_wit(&request)?)
            }
            Message::State { key, value } => {
                return crate::bindings::quarry::plugin::state::set(&key, &value)
                    .map_err(Error::from);
            }
        };
        crate::bindings::quarry::plugin::sink::emit(&message).map_err(Error::from)
    }

    fn state_get(&mut self, key: &str) -> Result<Option<String>> {
        crate::bindings::quarry::plugin::state::get(key).map_err(Error::from)
    }
}

fn delete_request_to_wit(request: &DeleteRequest) -> Result<wit::DeleteRequest> {
    let mut groups = Vec::new();
    for group in &request.where_clause {
        let mut predicates = Vec::new();
        for p in &group.predicates {
            predicates.push(wit::Predicate {
                operator: wit::PredicateOperator::Eq,
                column: p.column.clone(),
                value: ipc::encode_batch(&p.value)?,
            });
        }
        groups.push(wit::PredicateGroup {
            grouping: match group.grouping {
                Grouping::And => wit::PredicateGrouping::And,
                Grouping::Or => wit::PredicateGrouping::Or,
            },
            predicates,
        });
    }
    Ok(wit::DeleteRequest {
        table_name: request.table.clone(),
        where_clause: groups,
    })
}

fn delete_request_from_wit(request: wit::DeleteRequest) -> Result<DeleteRequest> {
    let mut where_clause = Vec::new();
    for group in request.where_clause {
        let mut predicates = Vec::new();
        for p in group.predicates {
            let value = ipc::decode_batch(p.value)?;
            if value.num_rows() != 1 || value.num_columns() != 1 {
                return Err(Error::internal(format!(
                    "delete-record on `{}`: the value for `{}` must be one row of one column",
                    request.table_name, p.column
                )));
            }
            predicates.push(Predicate {
                column: p.column,
                value,
            });
        }
        where_clause.push(PredicateGroup {
            grouping: match group.grouping {
                wit::PredicateGrouping::And => Grouping::And,
                wit::PredicateGrouping::Or => Grouping::Or,
            },
            predicates,
        });
    }
    Ok(DeleteRequest {
        table: request.table_name,
        where_clause,
    })
}

pub fn sync<P: Source>(options: wit::SyncOptions) -> Result<(), wit::Error> {
    let options = SyncOptions {
        tables: options.tables.tables,
        skip_tables: options.tables.skip_tables,
        skip_dependent_tables: options.tables.skip_dependent_tables,
        deterministic_cq_id: options.deterministic_cq_id,
    };
    Ok(with_plugin::<P, _>(|p, _| {
        crate::sync::sync_into(p, &options, &mut HostSink)
    })?)
}

pub fn not_a_source<P: Plugin, T>() -> Result<T, wit::Error> {
    Err(Error::not_supported(format!("{} is not a source plugin", P::info().name)).into())
}

pub fn not_a_destination<P: Plugin, T>() -> Result<T, wit::Error> {
    Err(Error::not_supported(format!("{} is not a destination plugin", P::info().name)).into())
}

pub fn migrate_table<P: Destination>(schema: Vec<u8>, force: bool) -> Result<(), wit::Error> {
    let table = Table::from_schema(ipc::decode_schema(schema)?.as_ref())?;
    Ok(with_plugin::<P, _>(|p, tables| {
        p.migrate_table(&table, force)?;
        tables.insert(table.name.clone(), table);
        Ok(())
    })?)
}

pub fn insert<P: Destination>(batch: Vec<u8>) -> Result<(), wit::Error> {
    let batch = ipc::decode_batch(batch)?;
    let name = crate::table::table_name(batch.schema_ref()).to_string();
    Ok(with_plugin::<P, _>(|p, tables| {
        let table = tables.get(&name).ok_or_else(|| {
            Error::internal(format!(
                "insert into table `{name}`, which was never migrated"
            ))
        })?;
        p.insert(table, batch)
    })?)
}

pub fn delete_stale<P: Destination>(
    table: String,
    source: String,
    sync_time: i64,
) -> Result<(), wit::Error> {
    Ok(with_plugin::<P, _>(|p, _| {
        p.delete_stale(&table, &source, sync_time)
    })?)
}

pub fn delete_record<P: Destination>(request: wit::DeleteRequest) -> Result<(), wit::Error> {
    let request = delete_request_from_wit(request)?;
    Ok(with_plugin::<P, _>(|p, _| p.delete_record(&request))?)
}

pub fn existing_table<P: Destination>(wanted: Vec<u8>) -> Result<Option<Vec<u8>>, wit::Error> {
    let wanted = Table::from_schema(ipc::decode_schema(wanted)?.as_ref())?;
    Ok(with_plugin::<P, _>(|p, _| {
        p.existing_table(&wanted)?
            .map(|t| ipc::encode_schema(&t.schema()))
            .transpose()
    })?)
}

pub fn flush<P: Destination>() -> Result<(), wit::Error> {
    Ok(with_plugin::<P, _>(|p, _| p.flush())?)
}

pub fn not_a_transformer<P: Plugin, T>() -> Result<T, wit::Error> {
    Err(Error::not_supported(format!("{} is not a transformer plugin", P::info().name)).into())
}

pub fn transform_schema<P: Transformer>(schema: Vec<u8>) -> Result<Vec<u8>, wit::Error> {
    let schema = ipc::decode_schema(schema)?;
    Ok(with_plugin::<P, _>(|p, _| {
        ipc::encode_schema(p.transform_schema(schema)?.as_ref())
    })?)
}

pub fn transform<P: Transformer>(batch: Vec<u8>) -> Result<Vec<Vec<u8>>, wit::Error> {
    let batch = ipc::decode_batch(batch)?;
    Ok(with_plugin::<P, _>(|p, _| {
        let mut out = Vec::new();
        for batch in p.transform(batch)? {
            out.extend(ipc::encode_batch_within(&batch, MAX_EMIT_BYTES)?);
        }
        Ok(out)
    })?)
}

pub fn read<P: Destination>(schema: Vec<u8>) -> Result<Vec<Vec<u8>>, wit::Error> {
    let table = Table::from_schema(ipc::decode_schema(schema)?.as_ref())?;
    Ok(with_plugin::<P, _>(|p, _| {
        p.read(&table)?.iter().map(ipc::encode_batch).collect()
    })?)
}

/// Exports a type that implements [`Plugin`](crate::Plugin) and [`Source`](crate::Source) as the
/// component's plugin.
#[macro_export]
macro_rules! export_source {
    ($plugin:ty) => {
        $crate::__export_plugin!($plugin, source, no_destination, no_transformer);
    };
}

/// Exports a type that implements [`Plugin`](crate::Plugin) and
/// [`Destination`](crate::Destination) as the component's plugin.
#[macro_export]
macro_rules! export_destination {
    ($plugin:ty) => {
        $crate::__export_plugin!($plugin, no_source, destination, no_transformer);
    };
}

/// Exports a type that implements [`Plugin`](crate::Plugin), [`Source`](crate::Source) and
/// [`Destination`](crate::Destination) as the component's plugin.
#[macro_export]
macro_rules! export_source_and_destination {
    ($plugin:ty) => {
        $crate::__export_plugin!($plugin, source, destination, no_transformer);
    };
}

/// Exports a type that implements [`Plugin`](crate::Plugin) and
/// [`Transformer`](crate::Transformer) as the component's plugin.
#[macro_export]
macro_rules! export_transformer {
    ($plugin:ty) => {
        $crate::__export_plugin!($plugin, no_source, no_destination, transformer);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($plugin:ty, $source:ident, $destination:ident, $transformer:ident) => {
        #[doc(hidden)]
        pub struct __QuarryPlugin;

        const _: () = {
            use $crate::__private as glue;
            use $crate::bindings::exports::quarry::plugin::{destination, plugin, source, transformer};
            use $crate::bindings::quarry::plugin::types as wit;

            impl plugin::Guest for __QuarryPlugin {
                fn info() -> wit::PluginInfo {
                    glue::info::<$plugin>(glue::Kinds {
                        source: $crate::__export_plugin!(@is $source),
                        destination: $crate::__export_plugin!(@is $destination),
                    })
                }
                fn spec_schema() -> String {
                    glue::spec_schema::<$plugin>()
                }
                fn init(spec: String) -> Result<(), wit::Error> {
                    glue::init::<$plugin>(spec)
                }
                fn test_connection() -> Result<(), wit::Error> {
                    glue::test_connection::<$plugin>()
                }
                fn close() -> Result<(), wit::Error> {
                    glue::close::<$plugin>()
                }
            }

            $crate::__export_plugin!(@$source $plugin);
            $crate::__export_plugin!(@$destination $plugin);
            $crate::__export_plugin!(@$transformer $plugin);
        };

        // Only a component carries the export names (`quarry:plugin/...#insert`); native linkers
        // reject them, and native builds are for unit tests.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_world!(__QuarryPlugin with_types_in $crate::bindings);
    };
    (@is source) => { true };
    (@is no_source) => { false };
    (@is destination) => { true };
    (@is no_destination) => { false };
    (@transformer $plugin:ty) => {
        impl transformer::Guest for __QuarryPlugin {
            fn transform_schema(table: Vec<u8>) -> Result<Vec<u8>, wit::Error> {
                glue::transform_schema::<$plugin>(table)
            }
            fn transform(batch: Vec<u8>) -> Result<Vec<Vec<u8>>, wit::Error> {
                glue::transform::<$plugin>(batch)
            }
        }
    };
    (@no_transformer $plugin:ty) => {
        impl transformer::Guest for __QuarryPlugin {
            fn transform_schema(_: Vec<u8>) -> Result<Vec<u8>, wit::Error> {
                glue::not_a_transformer::<$plugin, _>()
            }
            fn transform(_: Vec<u8>) -> Result<Vec<Vec<u8>>, wit::Error> {
                glue::not_a_transformer::<$plugin, _>()
            }
        }
    };
    (@source $plugin:ty) => {
        impl source::Guest for __QuarryPlugin {
            fn tables(options: wit::TableOptions) -> Result<Vec<Vec<u8>>, wit::Error> {
                glue::tables::<$plugin>(options)
            }
            fn sync(options: wit::SyncOptions) -> Result<(), wit::Error> {
                glue::sync::<$plugin>(options)
            }
        }
    };
    (@no_source $plugin:ty) => {
        impl source::Guest for __QuarryPlugin {
            fn tables(_: wit::TableOptions) -> Result<Vec<Vec<u8>>, wit::Error> {
                glue::not_a_source::<$plugin, _>()
            }
            fn sync(_: wit::SyncOptions) -> Result<(), wit::Error> {
                glue::not_a_source::<$plugin, _>()
            }
        }
    };
    (@destination $plugin:ty) => {
        impl destination::Guest for __QuarryPlugin {
            fn existing_table(wanted: Vec<u8>) -> Result<Option<Vec<u8>>, wit::Error> {
                glue::existing_table::<$plugin>(wanted)
            }
            fn migrate_table(table: Vec<u8>, force: bool) -> Result<(), wit::Error> {
                glue::migrate_table::<$plugin>(table, force)
            }
            fn insert(batch: Vec<u8>) -> Result<(), wit::Error> {
                glue::insert::<$plugin>(batch)
            }
            fn delete_stale(table: String, source: String, sync_time: i64) -> Result<(), wit::Error> {
                glue::delete_stale::<$plugin>(table, source, sync_time)
            }
            fn delete_record(request: wit::DeleteRequest) -> Result<(), wit::Error> {
                glue::delete_record::<$plugin>(request)
            }
            fn flush() -> Result<(), wit::Error> {
                glue::flush::<$plugin>()
            }
            fn read(table: Vec<u8>) -> Result<Vec<Vec<u8>>, wit::Error> {
                glue::read::<$plugin>(table)
            }
        }
    };
    (@no_destination $plugin:ty) => {
        impl destination::Guest for __QuarryPlugin {
            fn existing_table(_: Vec<u8>) -> Result<Option<Vec<u8>>, wit::Error> {
                glue::not_a_destination::<$plugin, _>()
            }
            fn migrate_table(_: Vec<u8>, _: bool) -> Result<(), wit::Error> {
                glue::not_a_destination::<$plugin, _>()
            }
            fn insert(_: Vec<u8>) -> Result<(), wit::Error> {
                glue::not_a_destination::<$plugin, _>()
            }
            fn delete_stale(_: String, _: String, _: i64) -> Result<(), wit::Error> {
                glue::not_a_destination::<$plugin, _>()
            }
            fn delete_record(_: wit::DeleteRequest) -> Result<(), wit::Error> {
                glue::not_a_destination::<$plugin, _>()
            }
            fn flush() -> Result<(), wit::Error> {
                glue::not_a_destination::<$plugin, _>()
            }
            fn read(_: Vec<u8>) -> Result<Vec<Vec<u8>>, wit::Error> {
                glue::not_a_destination::<$plugin, _>()
            }
        }
    };
}
