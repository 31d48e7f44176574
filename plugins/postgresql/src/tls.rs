//! TLS to PostgreSQL, inside the component: `SSLRequest`, then rustls (ring) over the same
//! `wasi:sockets` stream, so the sandbox still sees one granted TCP connection and nothing
//! else. Modes follow libpq's `sslmode`:
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow` | only if the server refuses a plain connection | no |
//! | `prefer` (the default) | if the server offers it (on loopback: as `allow`) | no |
//! | `require` | always | no; against `sslrootcert` if one is given (as libpq) |
//! | `verify-ca` | always | chain to a root of `sslrootcert` |
//! | `verify-full` | always | chain, and the host name or address in the certificate |
//!
//! `sslrootcert` is a PEM file (read through the plugin's file grants) or `system`: the Mozilla
//! roots built into the plugin (the sandbox cannot read the system's store unless granted; give
//! its file, e.g. `/etc/ssl/certs/ca-certificates.crt`, to use it). Without `sslrootcert`,
//! `verify-full` uses the built-in roots. A chain-only check (`verify-ca`, `require` with
//! `sslrootcert`) against the built-in roots is refused: any publicly trusted certificate, for
//! any name, would pass it (PostgreSQL refuses `sslrootcert=system` below `verify-full` too).

use std::sync::Arc;

use quarry_sdk::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a server that refuses TLS is an error.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

/// The TLS settings of a connection string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file, or `system`.
    pub root_cert: Option<String>,
}

/// What the certificate check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Encryption only (libpq's `require` without a root file, `prefer`, `allow`).
    None,
    /// The chain, not the name.
    Chain,
    /// The chain and the name.
    Full,
}

impl Tls {
    /// Whether to try without TLS first, and with it only if the server refuses: libpq's
    /// `allow`, and Quarry's `prefer` on a loopback address, where TLS protects nothing (the
    /// bytes never leave the machine) and costs a lot (rustls in wasm has no AES instructions:
    /// a COPY was 2.5 times slower).
    pub fn plain_first(&self, host: &str) -> bool {
        match self.mode {
            SslMode::Allow => true,
            SslMode::Prefer => {
                host.eq_ignore_ascii_case("localhost")
                    || host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            _ => false,
        }
    }

    fn check(&self) -> Check {
        match self.mode {
            SslMode::VerifyFull => Check::Full,
            SslMode::VerifyCa => Check::Chain,
            SslMode::Require if self.root_cert.is_some() => Check::Chain,
            _ => Check::None,
        }
    }

    /// The rustls client configuration for these settings.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("TLS: {e}")))?;
        let public_roots = matches!(self.root_cert.as_deref(), None | Some("system"));
        let verifier: Arc<dyn ServerCertVerifier> = match self.check() {
            Check::None => Arc::new(Unchecked(provider)),
            Check::Chain if public_roots => {
                return Err(Error::invalid_spec(
                    "connection_string: a chain-only check (`sslmode=verify-ca`, or `require` with \
                     `sslrootcert`) against the built-in public roots would accept any publicly \
                     trusted certificate for any name: give your CA's PEM file as `sslrootcert`, \
                     or use `sslmode=verify-full`",
                ));
            }
            check => {
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots()?), provider)
                        .build()
                        .map_err(|e| Error::invalid_spec(format!("sslrootcert: {e}")))?;
                if check == Check::Full {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        Ok(Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth(),
        ))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match self.root_cert.as_deref() {
            None | Some("system") => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    let dir = std::path::Path::new(path)
                        .parent()
                        .map(|d| d.display().to_string())
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| ".".into());
                    Error::invalid_spec(format!(
                        "connection_string: cannot read sslrootcert `{path}`: {e} (grant its \
                         directory: `permissions: {{ files: {{ {dir}: read }} }}`)"
                    ))
                })?;
                let mut found = 0;
                for cert in CertificateDer::pem_slice_iter(&bytes) {
                    let cert = cert.map_err(|e| {
                        Error::invalid_spec(format!(
                            "connection_string: sslrootcert `{path}` is not a PEM file of \
                             certificates: {e}"
                        ))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::invalid_spec(format!(
                            "connection_string: sslrootcert `{path}` holds a certificate that \
                             cannot be a root: {e}"
                        ))
                    })?;
                    found += 1;
                }
                if found == 0 {
                    return Err(Error::invalid_spec(format!(
                        "connection_string: sslrootcert `{path}` holds no certificate (expected \
                         PEM `-----BEGIN CERTIFICATE-----` blocks)"
                    )));
                }
            }
        }
        Ok(roots)
    }

    /// The server name the certificate must show (an address is checked as an IP SAN).
    pub fn server_name(host: &str) -> Result<ServerName<'static>> {
        ServerName::try_from(host.to_string()).map_err(|e| {
            Error::invalid_spec(format!(
                "connection_string: host `{host}` cannot be checked against a certificate: {e}"
            ))
        })
    }
}

/// A handshake whose signatures are checked but whose certificate is not (encryption without
/// authentication: what libpq's `require` and `prefer` give).
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a root; the name in the certificate is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_libpq_names_them() {
        for name in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(SslMode::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(SslMode::parse("verify_full"), None);
        assert_eq!(SslMode::default(), SslMode::Prefer);
    }

    #[test]
    fn prefer_tries_plain_first_only_on_loopback_and_allow_always() {
        let tls = |mode| Tls {
            mode,
            root_cert: None,
        };
        for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
            assert!(tls(SslMode::Prefer).plain_first(host), "{host}");
        }
        for host in ["db.example.com", "10.0.0.5", "localhost.example.com"] {
            assert!(!tls(SslMode::Prefer).plain_first(host), "{host}");
            assert!(tls(SslMode::Allow).plain_first(host), "{host}");
        }
        assert!(!tls(SslMode::Require).plain_first("127.0.0.1"));
        assert!(!tls(SslMode::Disable).plain_first("127.0.0.1"));
    }

    #[test]
    fn require_with_a_root_file_checks_the_chain_as_libpq_does() {
        let tls = |mode, root: Option<&str>| Tls {
            mode,
            root_cert: root.map(String::from),
        };
        assert_eq!(tls(SslMode::Require, None).check(), Check::None);
        assert_eq!(tls(SslMode::Require, Some("ca.pem")).check(), Check::Chain);
        assert_eq!(tls(SslMode::VerifyCa, None).check(), Check::Chain);
        assert_eq!(tls(SslMode::VerifyFull, None).check(), Check::Full);
        assert_eq!(tls(SslMode::Prefer, Some("ca.pem")).check(), Check::None);
    }

    #[test]
    fn an_unreadable_or_empty_root_file_is_named() {
        let missing = Tls {
            mode: SslMode::VerifyFull,
            root_cert: Some("/nonexistent/ca.pem".into()),
        };
        let e = missing.client_config().unwrap_err().to_string();
        assert!(
            e.contains("cannot read sslrootcert `/nonexistent/ca.pem`"),
            "{e}"
        );
        assert!(e.contains("files: { /nonexistent: read }"), "{e}");
        let dir = std::env::temp_dir().join(format!("quarry-pg-tls-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let empty = Tls {
            mode: SslMode::VerifyCa,
            root_cert: Some(dir.display().to_string()),
        };
        let e = empty.client_config().unwrap_err().to_string();
        std::fs::remove_file(&dir).ok();
        assert!(e.contains("holds no certificate"), "{e}");
    }

    #[test]
    fn the_built_in_roots_load() {
        for mode in [SslMode::Prefer, SslMode::VerifyFull] {
            Tls {
                mode,
                root_cert: None,
            }
            .client_config()
            .unwrap();
        }
    }

    /// Any publicly trusted certificate, for any name, chains to a public root: a check of the
    /// chain alone against them proves nothing about the server.
    #[test]
    fn a_chain_only_check_against_the_public_roots_is_refused() {
        for (mode, root_cert) in [
            (SslMode::VerifyCa, None),
            (SslMode::VerifyCa, Some("system")),
            (SslMode::Require, Some("system")),
        ] {
            let e = Tls {
                mode,
                root_cert: root_cert.map(String::from),
            }
            .client_config()
            .unwrap_err();
            assert!(
                e.message.contains("use `sslmode=verify-full`"),
                "{mode:?}: {e}"
            );
        }
    }
}
