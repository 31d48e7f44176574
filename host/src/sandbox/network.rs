//! Network grants: `permissions.network` entries (`host`, `host:port`, `*.domain`, `[v6]:port`,
//! each optionally behind `http://` or `https://`) and the check every outbound socket passes. A
//! socket sees only an IP address and a port, so a granted name is resolved when a connection is
//! checked, and the address must be one of its addresses; `*.domain` patterns can only be checked
//! by name (outbound HTTP, `super::http`), never for a raw socket.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use wasmtime_wasi::sockets::SocketAddrUse;

/// One `permissions.network` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGrant {
    /// `Some("http" | "https")`: only that scheme (outbound HTTP); `None`: any.
    pub scheme: Option<&'static str>,
    pub host: HostPattern,
    /// `None`: any port.
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Ip(IpAddr),
    /// A host name, lowercased.
    Name(String),
    /// `*.example.com`: any name ending in `.example.com` (stored with the leading dot).
    Suffix(String),
}

impl fmt::Display for HostGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = self.scheme {
            write!(f, "{scheme}://")?;
        }
        match &self.host {
            HostPattern::Ip(IpAddr::V6(ip)) if self.port.is_some() || self.scheme.is_some() => {
                write!(f, "[{ip}]")?
            }
            HostPattern::Ip(ip) => write!(f, "{ip}")?,
            HostPattern::Name(name) => f.write_str(name)?,
            HostPattern::Suffix(suffix) => write!(f, "*{suffix}")?,
        }
        match (self.scheme, self.port) {
            (Some("https"), Some(443)) | (Some("http"), Some(80)) | (_, None) => Ok(()),
            (_, Some(port)) => write!(f, ":{port}"),
        }
    }
}

impl HostGrant {
    /// Parses one entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let (scheme, entry) = match entry.split_once("://") {
            Some(("http", rest)) => (Some("http"), rest.trim_end_matches('/')),
            Some(("https", rest)) => (Some("https"), rest.trim_end_matches('/')),
            Some((other, _)) => {
                return Err(format!(
                    "`{other}://` is not a scheme a grant can name (write `http://`, `https://` \
                     or no scheme)"
                ));
            }
            None => (None, entry),
        };
        if entry.contains('/') {
            return Err(
                "a grant names a host, not a path (write `host`, `host:port` or `https://host`)"
                    .into(),
            );
        }
        let (host, port) = split_port(entry)?;
        let host = if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Ip(ip)
        } else if let Some(domain) = host.strip_prefix("*.") {
            check_name(domain)?;
            HostPattern::Suffix(format!(".{}", domain.to_ascii_lowercase()))
        } else {
            check_name(host)?;
            HostPattern::Name(host.to_ascii_lowercase())
        };
        // `https://host` means the scheme's own port, as a URL would.
        let port = port.or(match scheme {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        Ok(HostGrant { scheme, host, port })
    }

    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    /// Whether a request to `scheme://host:port`, by name, is granted (outbound HTTP).
    pub fn allows_name(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.scheme.is_none_or(|s| s == scheme)
            && self.port_matches(port)
            && match &self.host {
                HostPattern::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
                HostPattern::Name(name) => &host == name,
                HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
            }
    }
}

fn split_port(entry: &str) -> Result<(&str, Option<u16>), String> {
    let port = |text: &str| {
        text.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .map(Some)
            .ok_or_else(|| format!("`{text}` is not a port (1 to 65535)"))
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address in `[` has no closing `]`")?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((ip, port(p)?)),
            None if after.is_empty() => Ok((ip, None)),
            None => Err(format!("unexpected `{after}` after `]`")),
        };
    }
    match entry.matches(':').count() {
        0 => Ok((entry, None)),
        1 => {
            let (host, p) = entry.split_once(':').unwrap_or((entry, ""));
            Ok((host, port(p)?))
        }
        // A bare IPv6 address.
        _ => Ok((entry, None)),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a host name (write `host`, `host:port`, `*.domain` or an IP address)"
        ))
    }
}

/// What a plugin's sockets may do: connect to a granted address, and nothing else (no
/// listening, no UDP). The implicit bind that precedes a connect is to the unspecified address
/// and port 0, and is allowed as such.
#[derive(Debug, Clone, Default)]
pub struct SocketPolicy {
    grants: Vec<HostGrant>,
    plugin: String,
    denials: super::Denials,
}

impl SocketPolicy {
    pub fn new(grants: &[HostGrant]) -> Self {
        SocketPolicy {
            grants: grants.to_vec(),
            plugin: String::new(),
            denials: super::Denials::default(),
        }
    }

    /// Records refused connections for `plugin` in `denials` (its error then explains them).
    pub fn reporting(mut self, plugin: &str, denials: super::Denials) -> Self {
        self.plugin = plugin.to_string();
        self.denials = denials;
        self
    }

    pub async fn allows(&self, addr: SocketAddr, used_for: SocketAddrUse) -> bool {
        match used_for {
            SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
            SocketAddrUse::TcpConnect => self.allows_connect(addr).await,
            _ => false,
        }
    }

    async fn allows_connect(&self, addr: SocketAddr) -> bool {
        // Why a granted name did not do, if one resolved here: said instead of "no grant".
        let mut led_astray = None;
        // A grant with a scheme is for outbound HTTP only, not for a raw socket.
        let grants = self.grants.iter().filter(|g| g.scheme.is_none());
        for grant in grants.filter(|g| g.port_matches(addr.port())) {
            let allowed = match &grant.host {
                HostPattern::Ip(ip) => *ip == addr.ip(),
                HostPattern::Name(name) => {
                    let resolves = tokio::net::lookup_host((name.as_str(), addr.port()))
                        .await
                        .is_ok_and(|mut found| found.any(|a| a.ip() == addr.ip()));
                    if resolves && !name_may_lead_to(name, addr.ip()) {
                        led_astray.get_or_insert_with(|| {
                            format!(
                                "connecting to {addr} was denied: the grant `{grant}` resolves there, but a granted name may not lead to a {} address; to allow it, add the address alongside the name: `permissions: {{ network: [\"{grant}\", \"{addr}\"] }}`",
                                super::http::non_public(addr.ip()).unwrap_or("non-public")
                            )
                        });
                    }
                    resolves && name_may_lead_to(name, addr.ip())
                }
                HostPattern::Suffix(_) => false,
            };
            if allowed {
                return true;
            }
        }
        let message = led_astray.unwrap_or_else(|| {
            format!(
                "connecting to {addr} was denied: plugin `{}` has no network grant for it; to allow it, add it to the plugin's spec: `permissions: {{ network: [\"{addr}\"] }}`",
                self.plugin
            )
        });
        self.denials.record(&self.plugin, message);
        false
    }
}

/// Whether a connection granted by `name` may go to `ip`: a public address, or loopback for
/// `localhost` (which never leaves the machine's own resolver). A name whose answer is
/// loopback, private, link-local (instance metadata) or another non-public range is refused
/// unless that address is granted itself, as for outbound HTTP.
fn name_may_lead_to(name: &str, ip: IpAddr) -> bool {
    let local_name = name == "localhost" || name.ends_with(".localhost");
    super::http::non_public(ip).is_none() || (local_name && ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection is recorded, naming the grant that would allow it, for the
    /// plugin's error.
    #[tokio::test]
    async fn refused_connections_name_the_grant_that_would_allow_them() {
        let denials = super::super::Denials::default();
        let policy = SocketPolicy::new(&[HostGrant::parse("127.0.0.1:5432").unwrap()])
            .reporting("db", denials.clone());
        let connect = SocketAddrUse::TcpConnect;
        assert!(
            policy
                .allows("127.0.0.1:5432".parse().unwrap(), connect)
                .await
        );
        assert_eq!(denials.take(), None);
        assert!(
            !policy
                .allows("127.0.0.1:6379".parse().unwrap(), connect)
                .await
        );
        assert_eq!(
            denials.take().as_deref(),
            Some(
                "connecting to 127.0.0.1:6379 was denied: plugin `db` has no network grant for it; to allow it, add it to the plugin's spec: `permissions: { network: [\"127.0.0.1:6379\"] }`"
            )
        );
    }

    /// Issue 16, hole 4: a granted name cannot lead a raw socket into loopback or metadata.
    #[test]
    fn granted_names_lead_only_to_public_addresses_or_localhost_to_loopback() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(!name_may_lead_to("api.vendor.example", ip("127.0.0.1")));
        assert!(!name_may_lead_to(
            "api.vendor.example",
            ip("169.254.169.254")
        ));
        assert!(!name_may_lead_to("api.vendor.example", ip("10.0.0.5")));
        assert!(!name_may_lead_to(
            "api.vendor.example",
            ip("::ffff:127.0.0.1")
        ));
        assert!(name_may_lead_to("api.vendor.example", ip("151.101.1.1")));
        assert!(name_may_lead_to("localhost", ip("127.0.0.1")));
        assert!(name_may_lead_to("localhost", ip("::1")));
        assert!(!name_may_lead_to("localhost", ip("10.0.0.5")));
    }

    #[test]
    fn entries_parse_and_print_back() {
        for entry in [
            "hacker-news.firebaseio.com",
            "*.example.com:8443",
            "127.0.0.1:5432",
            "localhost",
            "[::1]:5432",
            "::1",
            "https://hacker-news.firebaseio.com",
            "http://127.0.0.1:8080",
            "https://[::1]",
        ] {
            let grant = HostGrant::parse(entry).unwrap();
            assert_eq!(grant.to_string(), entry);
        }
        assert_eq!(
            HostGrant::parse("DB.Example.com:5432").unwrap().host,
            HostPattern::Name("db.example.com".into())
        );
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let err = |e: &str| HostGrant::parse(e).unwrap_err();
        assert_eq!(err("db:70000"), "`70000` is not a port (1 to 65535)");
        assert_eq!(err("db:"), "`` is not a port (1 to 65535)");
        assert!(err("exa mple.com").contains("is not a host name"));
        assert!(err("*.").contains("is not a host name"));
        assert!(err("a.*.com").contains("is not a host name"));
        assert_eq!(err("[::1"), "an IPv6 address in `[` has no closing `]`");
        assert!(err("ftp://files.example.com").contains("`ftp://` is not a scheme"));
        assert!(err("https://example.com/v0").contains("not a path"));
    }

    #[test]
    fn names_match_exactly_or_by_suffix_and_port() {
        let g = |e: &str| HostGrant::parse(e).unwrap();
        let https = |grant: &str, host: &str, port| g(grant).allows_name("https", host, port);
        assert!(https("api.example.com", "API.example.com", 443));
        assert!(!https("api.example.com", "example.com", 443));
        assert!(https("*.example.com:8443", "a.b.example.com", 8443));
        assert!(!https("*.example.com:8443", "a.example.com", 443));
        assert!(!https("*.example.com", "example.com", 443));
        assert!(!https("*.example.com", "badexample.com", 443));
        // A scheme in the grant pins the scheme and, unless written, the scheme's port.
        assert!(https("https://api.example.com", "api.example.com", 443));
        assert!(!https("https://api.example.com", "api.example.com", 8443));
        assert!(!g("https://api.example.com").allows_name("http", "api.example.com", 443));
        assert!(g("http://127.0.0.1:8080").allows_name("http", "127.0.0.1", 8080));
        assert!(!g("127.0.0.1:8080").allows_name("http", "localhost", 8080));
    }

    #[tokio::test]
    async fn sockets_connect_only_to_granted_addresses() {
        let policy = SocketPolicy::new(&[
            HostGrant::parse("127.0.0.1:5432").unwrap(),
            HostGrant::parse("localhost:6379").unwrap(),
            HostGrant::parse("*.example.com").unwrap(),
            HostGrant::parse("http://127.0.0.1:8080").unwrap(),
        ]);
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let connect = SocketAddrUse::TcpConnect;
        assert!(policy.allows(addr("127.0.0.1:5432"), connect).await);
        assert!(!policy.allows(addr("127.0.0.1:5433"), connect).await);
        assert!(!policy.allows(addr("10.0.0.1:5432"), connect).await);
        assert!(
            !policy.allows(addr("127.0.0.1:8080"), connect).await,
            "a grant with a scheme is for HTTP only"
        );
        assert!(
            policy.allows(addr("127.0.0.1:6379"), connect).await,
            "localhost resolves to 127.0.0.1"
        );
        assert!(
            policy
                .allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind)
                .await
        );
        assert!(
            !policy
                .allows(addr("0.0.0.0:8080"), SocketAddrUse::TcpBind)
                .await
        );
        assert!(
            !policy
                .allows(addr("0.0.0.0:0"), SocketAddrUse::TcpListen)
                .await
        );
        assert!(
            !policy
                .allows(addr("127.0.0.1:5432"), SocketAddrUse::UdpSend)
                .await
        );
    }
}
