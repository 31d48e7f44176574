//! Name lookups for plugins (`wasi:sockets/ip-name-lookup`), limited to the names the plugin's
//! grants name. wasmtime-wasi resolves any name once lookups are allowed at all, and a lookup is
//! a message to whoever runs the DNS zone: `secret-value.attacker.example` carries data out
//! without a single connection. So Quarry links its own `resolve-addresses` over wasmtime-wasi's,
//! refuses names no raw-socket grant names (`access-denied`), and hands the others on.
//!
//! Outbound HTTP resolves on the host side (`super::http`), not through this interface.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::SocketError;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView};

use super::{HostGrant, HostPattern};

/// Whether a plugin with `grants` may look `name` up: an IP literal (nothing is asked), or a
/// name a grant for raw sockets (no scheme) names exactly.
pub fn lookup_allowed(grants: &[HostGrant], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let literal = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    literal
        || grants.iter().any(|g| {
            g.scheme.is_none() && matches!(&g.host, HostPattern::Name(granted) if *granted == name)
        })
}

/// The view the linked functions get: wasmtime-wasi's, plus the plugin's grants.
pub struct LookupView<'a> {
    inner: WasiSocketsCtxView<'a>,
    grants: Arc<[HostGrant]>,
    plugin: Arc<str>,
    denials: super::Denials,
}

impl<'a> LookupView<'a> {
    pub fn new(
        grants: Arc<[HostGrant]>,
        plugin: Arc<str>,
        denials: super::Denials,
        sockets: &'a mut dyn WasiSocketsView,
    ) -> Self {
        LookupView {
            inner: sockets.sockets(),
            grants,
            plugin,
            denials,
        }
    }
}

struct Lookup;

impl HasData for Lookup {
    type Data<'a> = LookupView<'a>;
}

impl ip_name_lookup::Host for LookupView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        if !lookup_allowed(&self.grants, &name) {
            self.denials.record(
                &self.plugin,
                format!(
                    "looking up `{name}` was denied: plugin `{}` has no network grant naming it (a plugin looks up only granted names); to allow it, add it to the plugin's spec: `permissions: {{ network: [\"{name}:PORT\"] }}`",
                    self.plugin
                ),
            );
            return Err(ErrorCode::AccessDenied.into());
        }
        Host::resolve_addresses(&mut self.inner, network, name)
    }
}

/// The error conversions `ip-name-lookup` needs from `network`, as wasmtime-wasi does them.
impl network::Host for LookupView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.inner, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::io::error::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.inner, err)
    }
}

impl network::HostNetwork for LookupView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.inner, this)
    }
}

impl HostResolveAddressStream for LookupView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        self.inner.resolve_next_address(stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.inner.subscribe(stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.inner, stream)
    }
}

/// Links Quarry's `wasi:sockets/ip-name-lookup` over wasmtime-wasi's (which must be linked
/// first).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> LookupView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = ip_name_lookup::add_to_linker::<T, Lookup>(linker, view);
    linker.allow_shadowing(false);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_names_are_looked_up() {
        let grants: Vec<HostGrant> = [
            "localhost:5432",
            "db.example.com",
            "https://api.example.com",
            "*.example.org",
        ]
        .iter()
        .map(|g| HostGrant::parse(g).unwrap())
        .collect();
        assert!(lookup_allowed(&grants, "localhost"));
        assert!(lookup_allowed(&grants, "DB.example.com."));
        assert!(lookup_allowed(&grants, "10.0.0.1"));
        assert!(lookup_allowed(&grants, "::1"));
        // A name only HTTP may use is resolved by the host, not by the plugin.
        assert!(!lookup_allowed(&grants, "api.example.com"));
        assert!(!lookup_allowed(&grants, "a.example.org"));
        assert!(!lookup_allowed(&grants, "secret-value.attacker.example"));
        assert!(!lookup_allowed(&[], "localhost"));
    }
}
