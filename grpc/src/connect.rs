//! Dialing a v3 plugin over a Unix socket or TCP, and checking that it speaks protocol 3.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::pb::discovery_v0 as v0;
use crate::pb::discovery_v1 as v1;
use crate::pb::plugin::plugin_client::PluginClient;
use crate::{MAX_MESSAGE_BYTES, PROTOCOL_VERSION};

/// Where a plugin listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::Tcp(addr) => f.write_str(addr),
        }
    }
}

impl Address {
    /// `unix:/path`, `unix:///path` or an absolute path is a socket; anything else `host:port`.
    pub fn parse(text: &str) -> Address {
        if let Some(path) = text.strip_prefix("unix://") {
            Address::Unix(path.into())
        } else if let Some(path) = text.strip_prefix("unix:") {
            Address::Unix(path.into())
        } else if text.starts_with('/') {
            Address::Unix(text.into())
        } else {
            Address::Tcp(
                text.trim_start_matches("http://")
                    .trim_start_matches("grpc://")
                    .to_string(),
            )
        }
    }
}

/// Connects once (no retries: the caller decides how long to wait for a starting plugin).
pub async fn dial(address: &Address) -> Result<Channel, tonic::transport::Error> {
    match address {
        Address::Tcp(addr) => {
            Endpoint::from_shared(format!("http://{addr}"))?
                .tcp_nodelay(true)
                .connect()
                .await
        }
        Address::Unix(path) => {
            let path = path.clone();
            // The URI is required by the endpoint and ignored by the connector.
            Endpoint::from_static("http://plugin.invalid")
                .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
    }
}

/// A client with the protocol's message limits.
pub fn plugin_client(channel: Channel) -> PluginClient<Channel> {
    PluginClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Asks the plugin which protocol versions it serves (discovery v1, then v0) and checks that 3 is
/// one of them. The error says what the plugin offered.
pub async fn negotiate(channel: &Channel) -> Result<(), String> {
    let offered: Vec<i32> = match v1::discovery_client::DiscoveryClient::new(channel.clone())
        .get_versions(v1::get_versions::Request {})
        .await
    {
        Ok(response) => response.into_inner().versions,
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            match v0::discovery_client::DiscoveryClient::new(channel.clone())
                .get_versions(v0::get_versions::Request {})
                .await
            {
                Ok(response) => response
                    .into_inner()
                    .versions
                    .iter()
                    .filter_map(|v| v.trim_start_matches('v').parse().ok())
                    .collect(),
                Err(status) => {
                    return Err(format!(
                        "it does not answer CloudQuery's discovery service (v1 or v0): {}",
                        status.message()
                    ));
                }
            }
        }
        Err(status) => {
            return Err(format!(
                "asking for its protocol versions failed: {}",
                status.message()
            ));
        }
    };
    if offered.contains(&PROTOCOL_VERSION) {
        Ok(())
    } else {
        Err(format!(
            "it supports plugin protocol versions {offered:?}, but Quarry speaks only version {PROTOCOL_VERSION}; use a newer release of the plugin"
        ))
    }
}
