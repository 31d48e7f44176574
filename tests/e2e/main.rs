//! End-to-end tests: the built `quarry` CLI against the real wasm plugins, in temporary
//! directories. The plugins must be built first (`cargo plugins`; `scripts/test` does it).

mod cloudquery;
mod commands;
mod conformance;
mod duckdb;
mod embed;
mod faults;
mod file_source;
mod grpc;
mod hackernews;
mod languages;
mod mysql_source;
mod oci;
mod postgresql;
mod postgresql_source;
mod rest;
mod roundtrip;
mod sandbox;
mod semantics;
mod spec_errors;
mod sqlite;
mod state;
mod support;
mod sync;
mod transformers;
