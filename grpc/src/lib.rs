//! CloudQuery's plugin protocol v3 over gRPC, for Quarry.
//!
//! - [`pb`]: the service and messages, generated at build time from our own `.proto` files
//!   (`proto/`), written from the protocol's facts (field numbers, names, Arrow IPC payloads).
//! - [`payload`]: Arrow schemas, batches and delete requests to and from the protocol's bytes,
//!   splitting batches that would not fit in one gRPC message.
//! - [`serve`]: a v3 server for anything that implements [`serve::Served`], with the `serve`
//!   command line every CloudQuery plugin accepts. `quarry serve` and native plugins use it.
//! - [`code`]: a plugin's error kinds as gRPC status codes, both ways.
//! - [`sdk`]: serves a plugin written with `quarry-sdk` as a native process.
//! - [`connect`]: dialing a plugin and negotiating the protocol version, for clients.

mod authority;
pub mod code;
pub mod connect;
pub mod payload;
pub mod sdk;
pub mod serve;
pub mod state_client;

/// The generated protocol.
pub mod pb {
    /// `cloudquery.plugin.v3`
    pub mod plugin {
        tonic::include_proto!("cloudquery.plugin.v3");
    }
    /// `cloudquery.discovery.v1`
    pub mod discovery_v1 {
        tonic::include_proto!("cloudquery.discovery.v1");
    }
    /// `cloudquery.discovery.v0`
    pub mod discovery_v0 {
        tonic::include_proto!("cloudquery.discovery.v0");
    }
}

/// The plugin-protocol version this crate speaks.
pub const PROTOCOL_VERSION: i32 = 3;

/// The largest message either side accepts (CloudQuery's CLI and Go SDK use the same).
pub const MAX_MESSAGE_BYTES: usize = 200 * 1024 * 1024;

/// The largest record this side sends in one message. Python and JavaScript plugin servers keep
/// gRPC's default 4 MiB receive limit, so records are split below it rather than dropped.
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;
