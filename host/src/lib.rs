//! Quarry's host: spec loading, the plugin runtimes and their sandbox, the sync engine, the CLI.
//! See `ARCHITECTURE.md` at the repository root for the map; each module's documentation opens
//! with its job.

pub mod cli;
pub mod plan;
pub mod runtime;
pub mod sandbox;
pub mod spec;
pub mod sync;
pub mod telemetry;
