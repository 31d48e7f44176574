//! Quarry: a data-integration engine whose plugins are sandboxed WebAssembly components (and
//! CloudQuery's native plugins, over gRPC).
//!
//! As a library it runs the syncs `quarry sync` runs, from the same specs, in your program:
//! [`Sync`] loads the specs, [`Sync::run`] plans and runs them and returns the [`Summary`], and
//! [`Sync::events`] reports progress as it happens. See the module [`embed`] for an example.
//!
//! The other modules are the CLI's and the tests': hidden from these docs, not an API, and they
//! change without notice. `ARCHITECTURE.md` at the repository root maps them.

pub mod embed;

pub use embed::{Error, Stopper, Summary, Sync};
pub use runtime::PluginError;
pub use spec::SpecError;
pub use sync::progress::Event;
pub use sync::{DestinationSummary, SourceSummary, TableSummary};

#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod plan;
#[doc(hidden)]
pub mod runtime;
#[doc(hidden)]
pub mod sandbox;
#[doc(hidden)]
pub mod spec;
#[doc(hidden)]
pub mod sync;
#[doc(hidden)]
pub mod telemetry;
