//! Write Quarry plugins: sources and destinations that run as sandboxed WebAssembly components.
//!
//! A plugin is a type that implements [`Plugin`] and [`Source`] or [`Destination`] (or both),
//! or [`Transformer`], exported with one macro: [`export_source!`], [`export_destination!`],
//! [`export_source_and_destination!`] or [`export_transformer!`]. Rows travel as Arrow [`RecordBatch`]es; tables are
//! described with [`Table`] and [`Column`]. The WebAssembly bindings stay inside this crate, and
//! the same plugin code compiles natively so that its unit tests run with plain `cargo test`
//! (see [`run_sync`]).
//!
//! ```ignore
//! use quarry_sdk::{Column, Plugin, Source, SyncContext, Table, Info, Result};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Spec { greeting: String }
//!
//! struct Hello { spec: Spec }
//!
//! impl Plugin for Hello {
//!     type Spec = Spec;
//!     fn info() -> Info { Info::new("hello", env!("CARGO_PKG_VERSION"), "Says hello") }
//!     fn new(spec: Spec) -> Result<Self> { Ok(Hello { spec }) }
//! }
//!
//! impl Source for Hello {
//!     fn tables(&self) -> Vec<Table> {
//!         vec![Table::new("greetings").column(Column::new("text", DataType::Utf8))]
//!     }
//!     fn sync(&mut self, tables: &[Table], out: &mut SyncContext<'_>) -> Result<()> {
//!         for table in tables {
//!             let text = StringArray::from(vec![self.spec.greeting.as_str()]);
//!             out.insert(table, vec![Arc::new(text)])?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! quarry_sdk::export_source!(Hello);
//! ```
#![warn(missing_docs)]

pub mod cq_id;
pub mod cursor;
mod error;
mod export;
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "http")]
pub mod http;
pub mod ipc;
#[cfg(feature = "json")]
pub mod json;
pub mod log;
mod mem;
pub mod migrate;
mod plugin;
pub mod sql;
mod sync;
mod table;
pub mod time;

#[doc(hidden)]
pub mod bindings;

pub use arrow_array::RecordBatch;
pub use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
pub use error::{Error, ErrorKind, Result};
pub use plugin::{Destination, Info, Plugin, Source, Transformer, WriteMode};
pub use sync::{
    ChildRows, DeleteRequest, Grouping, Message, PatternList, Predicate, PredicateGroup, Relation,
    SelectionError, SyncContext, SyncOptions, matches_glob, matches_star_glob, run_sync,
    select_tables, selection, sync_each,
};
pub use table::{Column, Extension, Table, metadata, parse_mac, table_name};

#[doc(hidden)]
pub mod __private {
    pub use crate::export::*;
}
