//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`). wasmtime-wasi-http turns a guest's
//! request into an `http::Request` and hands it to [`OutboundHttp::send_request`]; Quarry checks
//! it against the plugin's `permissions.network` grants and sends it itself, through one pooled
//! keep-alive client per plugin instance (HTTP/1.1, and HTTP/2 where TLS negotiates it; rustls
//! with the system's root certificates).
//!
//! Two checks, both the host's:
//! - by name, before anything is sent: the URL's scheme, host and port must match a grant;
//! - by address, when a connection is opened: a granted *name* must not lead into loopback,
//!   private, link-local or other non-public ranges unless that address is itself granted. The
//!   resolver drops such addresses and the connector connects only to what it returned, so a name
//!   that changes its answer between two lookups gains nothing.
//!
//! wasi:http does not go through `wasi:sockets`, so `SocketPolicy` never sees these requests.
//! Redirects are not followed here: the guest gets the 3xx, and the request it sends next is
//! checked like any other.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, Sleep};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks, WasiHttpView};

use super::HostGrant;

/// What a request may take when the guest sets no timeout of its own: to connect, for the
/// first byte of the answer, and between two chunks of its body.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest any of those may be, whatever the guest asks.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

type HttpClient = Client<HttpsConnector<HttpConnector<PublicResolver>>, WasiBody>;

/// The `wasi:http` hooks of one plugin instance: its grants, its pool, and the first request it
/// was denied (reported with the plugin's own error, which may not quote it).
#[derive(Clone)]
pub struct OutboundHttp {
    inner: Arc<Inner>,
}

struct Inner {
    plugin: Arc<str>,
    grants: Vec<HostGrant>,
    /// One pool per set of exempted addresses, built at the first request that needs it (a
    /// plugin that sends none opens none): each exempts from the non-public rule only the
    /// addresses granted for the request's scheme and port.
    clients: Mutex<std::collections::HashMap<Vec<IpAddr>, HttpClient>>,
    denied: super::Denials,
    /// TLS settings other than the process's (tests trust their own CA).
    tls: Option<rustls::ClientConfig>,
}

impl OutboundHttp {
    pub fn new(plugin: &str, grants: &[HostGrant]) -> Self {
        Self::with_tls(plugin, grants, None)
    }

    fn with_tls(plugin: &str, grants: &[HostGrant], tls: Option<rustls::ClientConfig>) -> Self {
        OutboundHttp {
            inner: Arc::new(Inner {
                plugin: plugin.into(),
                grants: grants.to_vec(),
                clients: Mutex::default(),
                denied: super::Denials::default(),
                tls,
            }),
        }
    }

    /// The first request, connection or lookup denied since the last call, in words that name
    /// it and the grant that would allow it.
    pub fn take_denial(&self) -> Option<String> {
        self.inner.denied.take()
    }

    /// Where sockets and lookups record their denials, beside this plugin's HTTP ones.
    pub fn denials(&self) -> super::Denials {
        self.inner.denied.clone()
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        let inner = self.inner.clone();
        Box::new(async move {
            let response = inner.send(request, options.unwrap_or_default()).await?;
            // The pool drives its connections; there is no per-request I/O task to hand back.
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// `wasi:http/outgoing-handler` as wasmtime-wasi-http's WIT names it (`wit/deps/http.wit`). A
/// wasmtime-wasi-http with another version of it needs this changed, or its own `handle` (which
/// leaks) is what guests of that version get.
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Links Quarry's `wasi:http/outgoing-handler#handle` over wasmtime-wasi-http's (which must be
/// linked first): the same function, except that it frees the `request-options` it is handed.
/// `option<request-options>` is passed owned, so once sent the guest can no longer drop it, and
/// wasmtime-wasi-http 48 only reads it: every request that set a timeout kept one handle in the
/// store's `ResourceTable` for the life of the instance, and a plugin reached `MAX_HANDLES`
/// after about 4,000 requests.
pub fn link_outgoing_handler<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = linker
        .instance(OUTGOING_HANDLER)
        .and_then(|mut handler| handler.func_wrap("handle", handle::<T>));
    linker.allow_shadowing(false);
    linked
}

type Handled = (Result<Resource<HostFutureIncomingResponse>, ErrorCode>,);

fn handle<T: WasiHttpView>(
    mut store: StoreContextMut<'_, T>,
    (request, options): (
        Resource<HostOutgoingRequest>,
        Option<Resource<RequestOptions>>,
    ),
) -> wasmtime::Result<Handled> {
    let mut http = store.data_mut().http();
    let options_rep = options.as_ref().map(|o| o.rep());
    let sent = outgoing_handler::Host::handle(&mut http, request, options);
    // Read (and copied) by wasmtime-wasi-http; the handle is the host's to free, sent or not.
    if let Some(rep) = options_rep {
        http.table
            .delete(Resource::<RequestOptions>::new_own(rep))?;
    }
    match sent {
        Ok(future) => Ok((Ok(future),)),
        // An error code is the guest's answer; anything else traps.
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}

/// Where a request goes, as the grants see it.
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// The URL without user info, for messages.
    url: String,
}

impl Target {
    fn of(uri: &http::Uri) -> Result<Self, String> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            other => {
                return Err(format!(
                    "`{uri}`: only http:// and https:// can be requested (not {})",
                    other.map_or("a URL without a scheme".into(), |s| format!("{s}://"))
                ));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("`{uri}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = match (host.parse::<IpAddr>(), uri.port_u16()) {
            (Ok(IpAddr::V6(_)), Some(p)) => format!("[{host}]:{p}"),
            (Ok(IpAddr::V6(_)), None) => format!("[{host}]"),
            (_, Some(p)) => format!("{host}:{p}"),
            (_, None) => host.clone(),
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let scheme = if https { "https" } else { "http" };
        Ok(Target {
            url: format!("{scheme}://{authority}{path}"),
            https,
            host,
            port,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// The grant that would allow this request: the host, with its port unless the scheme's.
    fn grant(&self) -> String {
        let default_port = self.port == if self.https { 443 } else { 80 };
        match (self.host.parse::<IpAddr>(), default_port) {
            (Ok(IpAddr::V6(ip)), false) => format!("[{ip}]:{}", self.port),
            (_, false) => format!("{}:{}", self.host, self.port),
            (_, true) => self.host.clone(),
        }
    }
}

impl Inner {
    async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: RequestOptions,
    ) -> Result<http::Response<WasiBody>, Error> {
        let method = request.method().clone();
        let target = Target::of(request.uri()).map_err(|m| Error::InternalError(Some(m)))?;
        let granted = self
            .grants
            .iter()
            .any(|g| g.allows_name(target.scheme(), &target.host, target.port));
        if !granted {
            return Err(self.deny(format!(
                "{method} {} was denied: plugin `{}` has no network grant for {}; to allow it, \
                 add it to the plugin's spec: `permissions: {{ network: [\"{}\"] }}`",
                target.url,
                self.plugin,
                target.grant(),
                target.grant()
            )));
        }
        if target.https
            && let Err(problem) = self.tls()
        {
            return Err(Error::InternalError(Some(format!(
                "{method} {}: {problem}",
                target.url
            ))));
        }
        let timeout = |t: Option<Duration>| t.unwrap_or(DEFAULT_TIMEOUT).min(MAX_TIMEOUT);
        let (connect, first_byte, between_bytes) = (
            timeout(options.connect_timeout),
            timeout(options.first_byte_timeout),
            timeout(options.between_bytes_timeout),
        );
        tracing::trace!(plugin = %self.plugin, %method, url = %target.url, "http request");
        let client = self.client(&target);
        let sent = tokio::time::timeout(connect + first_byte, client.request(request));
        let response = match sent.await {
            Err(_) => return Err(Error::HttpResponseTimeout),
            Ok(Err(e)) => return Err(self.transport_error(&method, &target, &e)),
            Ok(Ok(response)) => response,
        };
        Ok(response.map(|body| {
            TimedBody {
                inner: body.map_err(Error::from).boxed_unsync(),
                between_bytes,
                timer: Box::pin(tokio::time::sleep(between_bytes)),
            }
            .boxed_unsync()
        }))
    }

    fn tls(&self) -> Result<&rustls::ClientConfig, &'static str> {
        match &self.tls {
            Some(config) => Ok(config),
            None => tls_config(),
        }
    }

    /// The addresses granted literally for this scheme and port: a name may lead to them even
    /// when they are not public (`127.0.0.1:5432` exempts 127.0.0.1 on port 5432 only).
    fn literal(&self, target: &Target) -> Vec<IpAddr> {
        self.grants
            .iter()
            .filter(|g| g.port.is_none_or(|p| p == target.port))
            .filter(|g| g.scheme.is_none_or(|s| s == target.scheme()))
            .filter_map(|g| match g.host {
                super::HostPattern::Ip(ip) => Some(ip),
                _ => None,
            })
            .collect()
    }

    fn client(&self, target: &Target) -> HttpClient {
        let mut literal = self.literal(target);
        literal.sort();
        literal.dedup();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(literal.clone())
            .or_insert_with(|| {
                let mut http = HttpConnector::new_with_resolver(PublicResolver {
                    literal: literal.into(),
                });
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(MAX_TIMEOUT));
                let tls = match self.tls() {
                    Ok(config) => config.clone(),
                    // https is refused before it gets here; plain http still works.
                    Err(_) => empty_tls_config(),
                };
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_all_versions()
                    .wrap_connector(http);
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(IDLE_TIMEOUT)
                    .pool_timer(hyper_util::rt::TokioTimer::new())
                    .timer(hyper_util::rt::TokioTimer::new())
                    .build(connector)
            })
            .clone()
    }

    /// Records a denial (the first one is reported with the plugin's error) and returns the
    /// error the guest gets: its text names the URL and the grant.
    fn deny(&self, message: String) -> Error {
        self.denied.record(&self.plugin, message.clone());
        Error::InternalError(Some(message))
    }

    fn transport_error(
        &self,
        method: &http::Method,
        target: &Target,
        error: &hyper_util::client::legacy::Error,
    ) -> Error {
        // The first I/O error kind met on the way, if nothing more telling is found.
        let mut kind = None;
        let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(e) = cause {
            if let Some(denied) = e.downcast_ref::<AddressDenied>() {
                return self.deny(format!(
                    "{method} {} was denied: {denied}; plugins reach such addresses only when \
                     granted the address itself: `permissions: {{ network: [\"{}\"] }}`",
                    target.url,
                    denied.suggestion(target.port)
                ));
            }
            if let Some(lookup) = e.downcast_ref::<LookupFailed>() {
                return Error::DnsError {
                    rcode: Some(lookup.to_string()),
                    info_code: None,
                };
            }
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Error::InternalError(Some(format!(
                    "{method} {}: TLS with {} failed: {tls}",
                    target.url, target.host
                )));
            }
            // An I/O error's `source()` skips the error it wraps; `get_ref()` is that error.
            cause = match e.downcast_ref::<std::io::Error>() {
                Some(io) => {
                    kind.get_or_insert(io.kind());
                    io.get_ref().map(|inner| inner as &(dyn StdError + 'static))
                }
                None => e.source(),
            };
        }
        use std::io::ErrorKind as K;
        match kind {
            Some(K::ConnectionRefused) => return Error::ConnectionRefused,
            Some(K::TimedOut) => return Error::ConnectionTimeout,
            Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe) => {
                return Error::ConnectionTerminated;
            }
            _ => {}
        }
        Error::InternalError(Some(format!(
            "{method} {}: {}",
            target.url,
            error_chain(error)
        )))
    }
}

fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// The TLS client configuration: ring, TLS 1.2 and 1.3, the system's root certificates
/// (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured). Loaded once per process; an error says what
/// is missing.
fn tls_config() -> Result<&'static rustls::ClientConfig, &'static str> {
    static CONFIG: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(format!(
                    "no trusted root certificates were found on this machine{}; install the \
                     `ca-certificates` package or point SSL_CERT_FILE at a PEM bundle",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    }
                ));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .map_err(|e| format!("cannot set up TLS: {e}"))
        })
        .as_ref()
        .map_err(String::as_str)
}

fn empty_tls_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// Resolves names with the system's resolver and keeps only public addresses, plus any
/// address a grant names literally.
#[derive(Clone)]
struct PublicResolver {
    literal: Arc<[IpAddr]>,
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl tower_service::Service<Name> for PublicResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let literal = self.literal.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|error| LookupFailed {
                    host: host.clone(),
                    error,
                })?
                .collect();
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = found
                .into_iter()
                .partition(|a| literal.contains(&a.ip()) || non_public(a.ip()).is_none());
            if allowed.is_empty() {
                return Err(Box::new(AddressDenied {
                    host,
                    addresses: refused.iter().map(SocketAddr::ip).collect(),
                }) as BoxError);
            }
            Ok(allowed.into_iter())
        })
    }
}

#[derive(Debug)]
struct LookupFailed {
    host: String,
    error: std::io::Error,
}

impl fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot resolve `{}`: {}", self.host, self.error)
    }
}

impl StdError for LookupFailed {}

/// A granted name whose every address is in a range plugins may not reach by name.
#[derive(Debug)]
struct AddressDenied {
    host: String,
    addresses: Vec<IpAddr>,
}

impl AddressDenied {
    /// The literal grant that would allow the first address.
    fn suggestion(&self, port: u16) -> String {
        match self.addresses.first() {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            Some(ip) => format!("{ip}:{port}"),
            None => format!("{}:{port}", self.host),
        }
    }
}

impl fmt::Display for AddressDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addresses: Vec<String> = self
            .addresses
            .iter()
            .map(|ip| format!("{ip} ({})", non_public(*ip).unwrap_or("public")))
            .collect();
        if addresses.is_empty() {
            write!(f, "`{}` resolves to no address", self.host)
        } else {
            write!(f, "`{}` resolves to {}", self.host, addresses.join(", "))
        }
    }
}

impl StdError for AddressDenied {}

/// The kind of range an address is in, if plugins may not reach it through a name: loopback,
/// private, link-local, shared (CGNAT), multicast, reserved or unspecified.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private")
            } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if v6.segments()[..6] == [0; 6] {
                // IPv4-compatible (deprecated): judge the address it carries.
                non_public_v4(Ipv4Addr::from_bits(v6.to_bits() as u32)).or(Some("reserved"))
            } else if is_nat64(v6) {
                non_public_v4(Ipv4Addr::from_bits(v6.to_bits() as u32))
            } else {
                None
            }
        }
    }
}

fn is_nat64(v6: Ipv6Addr) -> bool {
    v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared")
    } else if a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 || (a == 198 && (b == 18 || b == 19)) || (a == 192 && b == 0) {
        Some("reserved")
    } else {
        None
    }
}

/// A response body that fails when no chunk arrives for `between_bytes`.
struct TimedBody {
    inner: WasiBody,
    between_bytes: Duration,
    timer: Pin<Box<Sleep>>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + this.between_bytes;
                this.timer.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `request-options` a guest hands `handle` is freed with the request: nothing is left in
    /// the table once the guest drops the future it got back.
    #[tokio::test]
    async fn handle_frees_the_request_options_it_is_handed() {
        use wasmtime::AsContextMut;
        use wasmtime::component::ResourceTable;
        use wasmtime_wasi_http::p2::bindings::http::types as wit;
        use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView};

        struct State {
            table: ResourceTable,
            http: WasiHttpCtx,
            hooks: OutboundHttp,
        }
        impl WasiHttpView for State {
            fn http(&mut self) -> WasiHttpCtxView<'_> {
                WasiHttpCtxView {
                    ctx: &mut self.http,
                    table: &mut self.table,
                    hooks: &mut self.hooks,
                }
            }
        }
        let engine = wasmtime::Engine::default();
        let mut store = wasmtime::Store::new(
            &engine,
            State {
                table: ResourceTable::new(),
                http: WasiHttpCtx::new(),
                hooks: OutboundHttp::new("p", &[]),
            },
        );
        let (request, options) = {
            let mut view = store.data_mut().http();
            let fields = wit::HostFields::new(&mut view).unwrap();
            let request = wit::HostOutgoingRequest::new(&mut view, fields).unwrap();
            (request, wit::HostRequestOptions::new(&mut view).unwrap())
        };
        let (sent,) = handle(store.as_context_mut(), (request, Some(options))).unwrap();
        if let Ok(future) = sent {
            wit::HostFutureIncomingResponse::drop(&mut store.data_mut().http(), future).unwrap();
        }
        assert!(store.data().table.is_empty(), "a handle was left behind");
    }

    #[test]
    fn addresses_plugins_may_not_reach_by_name() {
        let kind = |s: &str| non_public(s.parse().unwrap());
        assert_eq!(kind("127.0.0.1"), Some("loopback"));
        assert_eq!(kind("10.1.2.3"), Some("private"));
        assert_eq!(kind("172.16.0.1"), Some("private"));
        assert_eq!(kind("192.168.1.1"), Some("private"));
        assert_eq!(kind("169.254.169.254"), Some("link-local"));
        assert_eq!(kind("100.64.0.1"), Some("shared"));
        assert_eq!(kind("0.0.0.0"), Some("unspecified"));
        assert_eq!(kind("224.0.0.1"), Some("multicast"));
        assert_eq!(kind("::1"), Some("loopback"));
        assert_eq!(kind("fd00::1"), Some("private"));
        assert_eq!(kind("fe80::1"), Some("link-local"));
        assert_eq!(kind("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(kind("64:ff9b::a00:1"), Some("private"));
        assert_eq!(kind("151.101.1.1"), None);
        assert_eq!(kind("2a04:4e42::1"), None);
        assert_eq!(kind("172.32.0.1"), None);
    }

    #[test]
    fn targets_name_the_grant_that_would_allow_them() {
        let target = |u: &str| Target::of(&u.parse().unwrap()).unwrap();
        let t = target("https://Hacker-News.firebaseio.com/v0/item/1.json");
        assert_eq!(t.url, "https://hacker-news.firebaseio.com/v0/item/1.json");
        assert_eq!(t.grant(), "hacker-news.firebaseio.com");
        assert_eq!(
            target("http://user:pw@127.0.0.1:8080/x?y=1").url,
            "http://127.0.0.1:8080/x?y=1"
        );
        assert_eq!(target("http://[::1]:8080/").grant(), "[::1]:8080");
        assert_eq!(
            target("https://api.example.com:8443").grant(),
            "api.example.com:8443"
        );
        assert!(Target::of(&"/relative".parse().unwrap()).is_err());
    }

    #[tokio::test]
    async fn names_that_resolve_only_to_loopback_are_refused_unless_the_address_is_granted() {
        use tower_service::Service;
        let name = |s: &str| s.parse::<Name>().unwrap();
        let mut resolver = PublicResolver {
            literal: Arc::from(vec![]),
        };
        let err = resolver.call(name("localhost")).await.unwrap_err();
        let denied = err.downcast_ref::<AddressDenied>().unwrap();
        assert!(
            denied.to_string().contains("127.0.0.1 (loopback)"),
            "{denied}"
        );
        assert_eq!(denied.suggestion(8080), "127.0.0.1:8080");
        let mut granted = PublicResolver {
            literal: Arc::from(vec!["127.0.0.1".parse::<IpAddr>().unwrap()]),
        };
        let found: Vec<SocketAddr> = granted.call(name("localhost")).await.unwrap().collect();
        assert!(
            found
                .iter()
                .all(|a| a.ip() == "127.0.0.1".parse::<IpAddr>().unwrap())
        );
        assert!(!found.is_empty());
    }

    /// Issue 16, hole 9: a literal grant exempts its address on its own port and scheme only.
    #[tokio::test]
    async fn a_literal_grant_exempts_its_address_only_on_its_port() {
        use http_body_util::Empty;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let answer = hyper::service::service_fn(|_: http::Request<_>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(Bytes::from("reached")),
                    ))
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), answer)
                        .await;
                });
            }
        });
        let get = |url: &str| {
            let body = Empty::<Bytes>::new().map_err(|never| match never {});
            http::Request::get(url).body(body.boxed_unsync()).unwrap()
        };
        let url = format!("http://localhost:{port}/");
        let grants = |entries: &[String]| {
            entries
                .iter()
                .map(|e| HostGrant::parse(e).unwrap())
                .collect::<Vec<_>>()
        };
        // The name is granted on this port, the address only on another one.
        let other = grants(&[format!("localhost:{port}"), "127.0.0.1:5432".into()]);
        let http = OutboundHttp::new("p", &other);
        let error = http.inner.send(get(&url), RequestOptions::default()).await;
        assert!(
            error.is_err(),
            "reached a loopback port whose address was not granted"
        );
        let denial = http.take_denial().expect("a denial");
        assert!(denial.contains(&format!("127.0.0.1:{port}")), "{denial}");
        // Granted on this port: reached.
        let same = grants(&[format!("localhost:{port}"), format!("127.0.0.1:{port}")]);
        let http = OutboundHttp::new("p", &same);
        let response = http.inner.send(get(&url), RequestOptions::default()).await;
        let body = response
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"reached");
        // Granted for https only: plain http to it is not exempted.
        let https = grants(&[
            format!("localhost:{port}"),
            format!("https://127.0.0.1:{port}"),
        ]);
        let http = OutboundHttp::new("p", &https);
        assert!(
            http.inner
                .send(get(&url), RequestOptions::default())
                .await
                .is_err()
        );
    }

    mod tls {
        use std::convert::Infallible;
        use std::path::PathBuf;

        use http_body_util::{Empty, Full};
        use hyper_util::rt::TokioIo;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        use super::super::*;

        fn fixture(name: &str) -> PathBuf {
            [
                env!("CARGO_MANIFEST_DIR"),
                "..",
                "tests",
                "fixtures",
                "tls",
                name,
            ]
            .iter()
            .collect()
        }

        fn provider() -> Arc<rustls::crypto::CryptoProvider> {
            Arc::new(rustls::crypto::ring::default_provider())
        }

        /// An HTTPS server on loopback (HTTP/1.1 and HTTP/2 by ALPN) that answers every request
        /// with the HTTP version it arrived in. Returns its port.
        async fn serve() -> u16 {
            let certs = CertificateDer::pem_file_iter(fixture("server.pem"))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
            let mut config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // A client that refuses the certificate ends the handshake here.
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let answer = hyper::service::service_fn(|request: http::Request<_>| {
                            let version = format!("{:?}", request.version());
                            async move {
                                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
                                    version,
                                ))))
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), answer)
                            .await;
                    });
                }
            });
            port
        }

        fn trusting(ca: Option<&str>) -> rustls::ClientConfig {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(ca) = ca {
                for cert in CertificateDer::pem_file_iter(fixture(ca)).unwrap() {
                    roots.add(cert.unwrap()).unwrap();
                }
            }
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }

        fn get(url: &str) -> http::Request<WasiBody> {
            let body = Empty::<Bytes>::new().map_err(|never| match never {});
            http::Request::get(url).body(body.boxed_unsync()).unwrap()
        }

        async fn text(response: http::Response<WasiBody>) -> String {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        }

        fn message(error: Error) -> String {
            match error {
                Error::InternalError(Some(message)) => message,
                other => panic!("expected an error with a message, got {other:?}"),
            }
        }

        #[tokio::test]
        async fn https_verifies_the_chain_and_negotiates_http2() {
            let port = serve().await;
            let grants = [HostGrant::parse(&format!("https://127.0.0.1:{port}")).unwrap()];
            let url = format!("https://127.0.0.1:{port}/v0/maxitem.json");

            let http = OutboundHttp::with_tls("hn", &grants, Some(trusting(Some("ca.pem"))));
            for _ in 0..2 {
                let response = http.inner.send(get(&url), RequestOptions::default()).await;
                assert_eq!(text(response.unwrap()).await, "HTTP/2.0");
            }

            let untrusting = OutboundHttp::with_tls("hn", &grants, Some(trusting(None)));
            let error = untrusting
                .inner
                .send(get(&url), RequestOptions::default())
                .await;
            let error = message(error.unwrap_err());
            assert!(
                error.starts_with(&format!("GET {url}: TLS with 127.0.0.1 failed")),
                "{error}"
            );
            assert!(error.contains("UnknownIssuer"), "{error}");
            assert_eq!(untrusting.take_denial(), None);

            // The grant names https: the same host over plain http is another grant.
            let plain = format!("http://127.0.0.1:{port}/v0/maxitem.json");
            let error = http
                .inner
                .send(get(&plain), RequestOptions::default())
                .await;
            let error = message(error.unwrap_err());
            assert_eq!(
                error,
                format!(
                    "GET {plain} was denied: plugin `hn` has no network grant for \
                     127.0.0.1:{port}; to allow it, add it to the plugin's spec: \
                     `permissions: {{ network: [\"127.0.0.1:{port}\"] }}`"
                )
            );
            assert_eq!(http.take_denial(), Some(error));
        }
    }
}
