//! Plugins as OCI artifacts: the CNCF Wasm layout (config `application/vnd.wasm.config.v0+json`,
//! exactly one `application/wasm` layer), so that components pushed by `wkg` or `oras` pull into
//! Quarry and the other way round; and cosign's key-based signatures, stored beside the artifact
//! under the tag `sha256-<hex>.sig`.
//!
//! All registry traffic goes through `oci-client`; this module chooses the transport and the
//! credentials, checks every byte it is given against the digest it was asked for, and turns
//! the client's errors into messages that say what to do.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_client::Reference;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};

/// The config media type of a Wasm artifact (CNCF TAG Runtime's Wasm OCI artifact layout).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the one layer of a Wasm artifact: the component itself.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// An OCI image manifest.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The layer media type of a cosign signature: its blob is the signed payload.
pub const COSIGN_LAYER_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature over the payload.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// The largest manifest read (manifests are a few hundred bytes).
const MAX_MANIFEST: u64 = 4 << 20;
/// The largest signature payload read (cosign's are a few hundred bytes).
const MAX_SIGNATURE_PAYLOAD: u64 = 64 << 10;
/// The largest component pulled.
pub const MAX_COMPONENT: u64 = 1 << 30;

/// A repository in a registry, as a spec's `path:` names it: `<registry-host>/<repository>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    /// `host` or `host:port`.
    pub registry: String,
    /// The repository inside it, e.g. `plugins/postgresql`.
    pub name: String,
}

impl Repository {
    /// Parses `host[:port]/name`. The host is required: Quarry never guesses Docker Hub.
    pub fn parse(path: &str) -> Result<Self, OciError> {
        let bad = |why: &str| OciError::BadReference(format!("`{path}`: {why}"));
        let (registry, name) = path.split_once('/').ok_or_else(|| {
            bad("expected `<registry-host>/<repository>`, e.g. `ghcr.io/acme/plugin`")
        })?;
        let looks_like_host =
            registry.contains('.') || registry.contains(':') || registry == "localhost";
        if !looks_like_host {
            return Err(bad(
                "the first part must be a registry host (with a dot or a port, or `localhost`), e.g. `ghcr.io/acme/plugin`",
            ));
        }
        if name.contains(['@', ':']) {
            return Err(bad("put the tag or digest in `version:`, not in `path:`"));
        }
        // oci-spec checks the repository grammar (lowercase, separators).
        let probe = format!("{registry}/{name}:probe");
        probe
            .parse::<Reference>()
            .map_err(|e| bad(&format!("not a valid repository name ({e})")))?;
        Ok(Repository {
            registry: registry.to_string(),
            name: name.to_string(),
        })
    }

    /// Parses a command-line reference: `host/name`, `host/name:tag` or `host/name@sha256:...`.
    pub fn parse_reference(text: &str) -> Result<(Self, Option<String>), OciError> {
        if let Some((repo, digest)) = text.split_once('@') {
            // `host/name:tag@sha256:...`: the digest is what is meant; the tag is a label.
            let slash = repo.find('/').unwrap_or(0);
            let repo = match repo[slash..].rfind(':') {
                Some(i) => &repo[..slash + i],
                None => repo,
            };
            return Ok((Repository::parse(repo)?, Some(digest.to_string())));
        }
        let slash = text.find('/').unwrap_or(0);
        match text[slash..].rfind(':') {
            Some(i) => {
                let (repo, tag) = text.split_at(slash + i);
                Ok((Repository::parse(repo)?, Some(tag[1..].to_string())))
            }
            None => Ok((Repository::parse(text)?, None)),
        }
    }

    fn tagged(&self, tag: &str) -> Reference {
        Reference::with_tag(self.registry.clone(), self.name.clone(), tag.to_string())
    }

    fn at(&self, digest: &Digest) -> Reference {
        Reference::with_digest(self.registry.clone(), self.name.clone(), digest.to_string())
    }

    /// Whether the registry is on this machine (loopback), where plain HTTP is allowed.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => &self.registry,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// What a spec's `version:` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Version {
    /// No version: the tag `latest`.
    Latest,
    /// A tag; if no such tag exists and it reads as a semver requirement (`1`, `1.2`), it is one.
    Tag(String),
    /// A semver requirement (`^1.2`, `>=1, <2`, `~1.4.0`), resolved against the repository's
    /// tags: the highest matching release.
    Requirement(semver::VersionReq),
    /// A manifest digest: exactly these bytes.
    Digest(Digest),
}

impl Version {
    /// Reads a spec's `version:` (`None` when absent).
    pub fn parse(version: Option<&str>) -> Result<Self, OciError> {
        let Some(text) = version.map(str::trim) else {
            return Ok(Version::Latest);
        };
        if text.starts_with("sha256:") {
            return Digest::parse(text)
                .map(Version::Digest)
                .map_err(|e| OciError::BadReference(format!("version `{text}`: {e}")));
        }
        if text.contains(['^', '~', '>', '<', '=', '*', ',', ' ']) {
            return semver::VersionReq::parse(text)
                .map(Version::Requirement)
                .map_err(|e| {
                    OciError::BadReference(format!(
                        "version `{text}` is not a semver requirement: {e}"
                    ))
                });
        }
        if text.is_empty() {
            return Ok(Version::Latest);
        }
        if !is_tag(text) {
            return Err(OciError::BadReference(format!(
                "version `{text}`: not a tag (letters, digits, `_`, `.`, `-`; at most 128), a semver requirement or a `sha256:` digest"
            )));
        }
        Ok(Version::Tag(text.to_string()))
    }
}

/// The OCI tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_tag(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && text.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// How to reach one registry: from Quarry's config file (`registries:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// Plain HTTP, even though the registry is not on loopback.
    #[serde(default)]
    pub insecure: bool,
    /// A PEM file of CA certificates trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// Where the credentials for a registry came from (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `QUARRY_REGISTRY_USERNAME` / `QUARRY_REGISTRY_PASSWORD`.
    Environment,
    /// The Docker config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
    DockerConfig,
    /// None: anonymous.
    Anonymous,
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CredentialSource::Environment => {
                "QUARRY_REGISTRY_USERNAME and QUARRY_REGISTRY_PASSWORD"
            }
            CredentialSource::DockerConfig => "the Docker config (docker login)",
            CredentialSource::Anonymous => "no credentials (anonymous)",
        })
    }
}

/// Why a registry operation failed. Every message names the reference and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A reference that cannot be a repository, tag or digest.
    #[error("bad OCI reference {0}")]
    BadReference(String),
    /// A CA file that cannot be read or holds no certificate.
    #[error("registry `{registry}`: cannot use the CA file {path}: {detail}")]
    CaFile {
        /// The registry.
        registry: String,
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The registry did not answer.
    #[error(
        "cannot reach registry `{registry}`: {detail}; check the address (and `registries:` in quarry's config for TLS), or run with --offline from the store"
    )]
    Unreachable {
        /// The registry.
        registry: String,
        /// The transport's error.
        detail: String,
    },
    /// Plain HTTP (a loopback registry with no CA file) to a registry that speaks HTTPS.
    #[error(
        "registry `{registry}` speaks HTTPS, but quarry used plain HTTP (it is on loopback and has no `ca_file`); give its CA in quarry's config: `registries: {{ \"{registry}\": {{ ca_file: ca.pem }} }}`"
    )]
    NeedsTls {
        /// The registry.
        registry: String,
    },
    /// The registry refused the credentials, or wants some.
    #[error("registry `{registry}` refused {source_}: {hint}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// Where the credentials came from.
        source_: CredentialSource,
        /// What to do.
        hint: &'static str,
    },
    /// No such repository, tag or digest.
    #[error(
        "`{reference}` does not exist in the registry (no such repository, tag or digest){tags}"
    )]
    NotFound {
        /// The reference.
        reference: String,
        /// The tags there are, as a suffix.
        tags: String,
    },
    /// No tag satisfies a semver requirement.
    #[error("no tag of `{repository}` matches `{requirement}`; its release tags are {tags}")]
    NoMatchingTag {
        /// The repository.
        repository: String,
        /// The requirement.
        requirement: String,
        /// The release tags there are.
        tags: String,
    },
    /// The manifest is not a Wasm component artifact.
    #[error(
        "`{reference}` is not a Wasm component artifact: {why}; publish components with `quarry plugin push` (or `wkg oci push`, or `oras push` with config {WASM_CONFIG_MEDIA_TYPE} and one {WASM_LAYER_MEDIA_TYPE} layer)"
    )]
    NotWasm {
        /// The reference.
        reference: String,
        /// What it is instead.
        why: String,
    },
    /// Bytes that do not hash to the digest they were asked for, or fewer bytes than promised.
    #[error(
        "`{reference}`: {detail}; the download is discarded (retry; if it persists, the registry's copy is damaged)"
    )]
    Corrupt {
        /// The reference.
        reference: String,
        /// Expected and actual.
        detail: String,
    },
    /// Anything else the registry said.
    #[error("registry `{registry}`: {detail}")]
    Registry {
        /// The registry.
        registry: String,
        /// Its message.
        detail: String,
    },
}

impl From<DigestError> for OciError {
    fn from(e: DigestError) -> Self {
        OciError::BadReference(e.to_string())
    }
}

/// A manifest as the OCI image spec writes it (the fields Quarry reads or writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// An artifact's type (OCI 1.1), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Its media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    fn of(media_type: &str, bytes: &[u8], annotations: BTreeMap<String, String>) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest: Digest::of(bytes).to_string(),
            size: bytes.len() as u64,
            annotations,
        }
    }
}

impl Manifest {
    /// Parses a manifest's bytes.
    pub fn parse(bytes: &[u8], reference: &str) -> Result<Self, OciError> {
        serde_json::from_slice(bytes).map_err(|e| OciError::NotWasm {
            reference: reference.into(),
            why: format!("its manifest is not an OCI image manifest ({e})"),
        })
    }

    /// The component layer of a Wasm artifact, or why this is not one.
    pub fn component(&self, reference: &str) -> Result<&Descriptor, OciError> {
        let not = |why: String| OciError::NotWasm {
            reference: reference.into(),
            why,
        };
        if self.config.media_type != WASM_CONFIG_MEDIA_TYPE {
            return Err(not(format!(
                "its config is `{}`, not `{WASM_CONFIG_MEDIA_TYPE}`",
                self.config.media_type
            )));
        }
        match self.layers.as_slice() {
            [layer] if layer.media_type == WASM_LAYER_MEDIA_TYPE => {
                if layer.size > MAX_COMPONENT {
                    return Err(not(format!(
                        "its component is {} bytes, more than the {MAX_COMPONENT} quarry accepts",
                        layer.size
                    )));
                }
                Digest::parse(&layer.digest)
                    .map_err(|e| not(format!("its layer digest is invalid: {e}")))?;
                Ok(layer)
            }
            layers => Err(not(format!(
                "it has {} layer(s) ({}), not exactly one `{WASM_LAYER_MEDIA_TYPE}` layer",
                layers.len(),
                layers
                    .iter()
                    .map(|l| l.media_type.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// The config of a Wasm artifact (camelCase, as `wkg` writes it).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// RFC 3339.
    pub created: String,
    /// Always `wasm`.
    pub architecture: &'static str,
    /// `wasip2` for a component.
    pub os: &'static str,
    /// The layer's digest.
    pub layer_digests: Vec<String>,
    /// The component's world.
    pub component: ComponentInfo,
}

/// The imports and exports of a component, for the artifact's config.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ComponentInfo {
    /// Exported interface names.
    pub exports: Vec<String>,
    /// Imported interface names.
    pub imports: Vec<String>,
}

/// A component to push, with what describes it.
pub struct Publication<'a> {
    /// The component.
    pub component: &'a [u8],
    /// Its world, for the config.
    pub world: ComponentInfo,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// The layer's file name (`org.opencontainers.image.title`; `oras pull` names the file so).
    pub title: String,
    /// RFC 3339 time of the push.
    pub created: String,
}

/// One signature found beside an artifact: the signed payload and its base64 signature.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureBlob {
    /// The payload's bytes, as stored.
    pub payload: Vec<u8>,
    /// base64 DER ECDSA signature over `payload`.
    pub signature: String,
}

/// A registry client for one registry host.
pub struct Client {
    inner: oci_client::Client,
    auth: RegistryAuth,
    credentials: CredentialSource,
    registry: String,
}

/// The credentials for `registry`: the environment first, then the Docker config, else none.
/// `QUARRY_REGISTRY_USERNAME`/`_PASSWORD` go only to the registries `QUARRY_REGISTRY_HOST` lists
/// (comma-separated) when it is set, and never over plain HTTP beyond loopback.
fn credentials(registry: &str, plain_remote: bool) -> (RegistryAuth, CredentialSource) {
    let scoped = std::env::var("QUARRY_REGISTRY_HOST")
        .map(|hosts| hosts.split(',').any(|h| h.trim() == registry))
        .unwrap_or(true);
    if let (Ok(user), Ok(password), true, false) = (
        std::env::var("QUARRY_REGISTRY_USERNAME"),
        std::env::var("QUARRY_REGISTRY_PASSWORD"),
        scoped,
        plain_remote,
    ) {
        return (
            RegistryAuth::Basic(user, password),
            CredentialSource::Environment,
        );
    }
    use docker_credential::CredentialRetrievalError as Missing;
    match docker_credential::get_credential(registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => (
            RegistryAuth::Basic(user, password),
            CredentialSource::DockerConfig,
        ),
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            (RegistryAuth::Bearer(token), CredentialSource::DockerConfig)
        }
        Err(Missing::NoCredentialConfigured | Missing::ConfigNotFound) => {
            (RegistryAuth::Anonymous, CredentialSource::Anonymous)
        }
        Err(e) => {
            tracing::warn!(
                registry,
                "the Docker config's credentials for this registry could not be read ({e}); trying without"
            );
            (RegistryAuth::Anonymous, CredentialSource::Anonymous)
        }
    }
}

impl Client {
    /// A client for `repository`'s registry: HTTPS with the system's roots (and `ca_file`'s),
    /// plain HTTP only on loopback without a CA file, or when `insecure` is set.
    pub fn new(repository: &Repository, settings: &RegistrySettings) -> Result<Self, OciError> {
        // reqwest is built without a crypto provider of its own: ring is the process's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registry = repository.registry.clone();
        let mut extra_root_certificates = Vec::new();
        if let Some(path) = &settings.ca_file {
            let ca_error = |detail: String| OciError::CaFile {
                registry: registry.clone(),
                path: path.display().to_string(),
                detail,
            };
            let data = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
                return Err(ca_error("it holds no PEM certificate".into()));
            }
            extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let plain = settings.insecure || (repository.is_loopback() && settings.ca_file.is_none());
        let config = ClientConfig {
            protocol: if plain {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: concat!("quarry/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let inner = oci_client::Client::try_from(config).map_err(|e| OciError::CaFile {
            registry: registry.clone(),
            path: settings
                .ca_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            detail: e.to_string(),
        })?;
        let (auth, credentials) = credentials(&registry, plain && !repository.is_loopback());
        Ok(Client {
            inner,
            auth,
            credentials,
            registry,
        })
    }

    /// Turns the client's error about `reference` into Quarry's.
    fn error(&self, reference: &str, e: OciDistributionError) -> OciError {
        let unauthorized = || OciError::Unauthorized {
            registry: self.registry.clone(),
            source_: self.credentials,
            hint: match self.credentials {
                CredentialSource::Anonymous => {
                    "it needs credentials: set QUARRY_REGISTRY_USERNAME and QUARRY_REGISTRY_PASSWORD, or `docker login` to it"
                }
                _ => {
                    "check the user name and password (or token) and their rights on the repository"
                }
            },
        };
        let not_found = || OciError::NotFound {
            reference: reference.to_string(),
            tags: String::new(),
        };
        match e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
            OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    not_found()
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    unauthorized()
                } else {
                    OciError::Registry {
                        registry: self.registry.clone(),
                        detail: format!("{reference}: {envelope}"),
                    }
                }
            }
            OciDistributionError::ServerError { code: 404, .. } => not_found(),
            OciDistributionError::ServerError {
                code: 400, message, ..
            } if message.contains("HTTP request to an HTTPS server") => OciError::NeedsTls {
                registry: self.registry.clone(),
            },
            OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => unauthorized(),
            OciDistributionError::DigestError(e) => OciError::Corrupt {
                reference: reference.to_string(),
                detail: e.to_string(),
            },
            OciDistributionError::RequestError(e) => OciError::Unreachable {
                registry: self.registry.clone(),
                detail: error_chain(&e),
            },
            other => OciError::Registry {
                registry: self.registry.clone(),
                detail: format!("{reference}: {}", error_chain(&other)),
            },
        }
    }

    /// The manifest digest `version` names now, and the tag it was found under.
    pub async fn resolve(
        &self,
        repository: &Repository,
        version: &Version,
    ) -> Result<(Option<String>, Digest), OciError> {
        let tag = match version {
            Version::Digest(digest) => return Ok((None, digest.clone())),
            Version::Latest => "latest".to_string(),
            Version::Tag(tag) => tag.clone(),
            Version::Requirement(requirement) => {
                let tag = self.matching_tag(repository, requirement).await?;
                return Box::pin(self.resolve(repository, &Version::Tag(tag))).await;
            }
        };
        match self.manifest_at(repository, &repository.tagged(&tag)).await {
            Ok((_, digest)) => Ok((Some(tag), digest)),
            Err(OciError::NotFound { reference, .. }) => {
                // `1` or `1.2` with no such tag: a semver requirement, as in Cargo.
                if let Ok(requirement) = semver::VersionReq::parse(&tag)
                    && semver::Version::parse(tag.trim_start_matches('v')).is_err()
                {
                    let tag = self.matching_tag(repository, &requirement).await?;
                    return Box::pin(self.resolve(repository, &Version::Tag(tag))).await;
                }
                let mut tags = self.tags(repository).await.unwrap_or_default();
                tags.sort();
                Err(OciError::NotFound {
                    reference,
                    tags: if tags.is_empty() {
                        String::new()
                    } else {
                        format!("; its tags are {}", tags.join(", "))
                    },
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn matching_tag(
        &self,
        repository: &Repository,
        requirement: &semver::VersionReq,
    ) -> Result<String, OciError> {
        let tags = self.tags(repository).await?;
        let mut releases: Vec<(semver::Version, &String)> = tags
            .iter()
            .filter_map(|t| Some((semver::Version::parse(t.trim_start_matches('v')).ok()?, t)))
            .collect();
        releases.sort();
        releases
            .iter()
            .rev()
            .find(|(v, _)| requirement.matches(v))
            .map(|(_, t)| (*t).clone())
            .ok_or_else(|| OciError::NoMatchingTag {
                repository: repository.to_string(),
                requirement: requirement.to_string(),
                tags: if releases.is_empty() {
                    "none".into()
                } else {
                    releases
                        .iter()
                        .map(|(_, t)| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }

    /// Every tag of the repository.
    pub async fn tags(&self, repository: &Repository) -> Result<Vec<String>, OciError> {
        let reference = repository.tagged("latest");
        let mut tags = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = self
                .inner
                .list_tags(&reference, &self.auth, Some(1000), last.as_deref())
                .await
                .map_err(|e| self.error(&repository.to_string(), e))?;
            // Registries may cap a page below the size asked: keep asking until a page is empty
            // or brings nothing new (a registry that ignores `last`), at most 100 pages.
            let next = page.tags.last().cloned();
            if page.tags.is_empty() || next == last || tags.len() >= 100_000 {
                return Ok(tags);
            }
            last = next;
            tags.extend(page.tags);
        }
    }

    async fn manifest_at(
        &self,
        repository: &Repository,
        reference: &Reference,
    ) -> Result<(Vec<u8>, Digest), OciError> {
        let shown = reference.whole();
        let (bytes, _) = self
            .inner
            .pull_manifest_raw(reference, &self.auth, &[OCI_MANIFEST_MEDIA_TYPE])
            .await
            .map_err(|e| self.error(&shown, e))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(OciError::NotWasm {
                reference: shown,
                why: format!("its manifest is {} bytes", bytes.len()),
            });
        }
        // The client compared the body with the registry's digest header; the digest is
        // computed here again from the bytes kept, whatever the header said.
        let digest = Digest::of(&bytes);
        if let Some(asked) = reference.digest()
            && asked != digest.to_string()
        {
            return Err(OciError::Corrupt {
                reference: format!("{repository}@{asked}"),
                detail: format!("the registry sent a manifest whose digest is {digest}"),
            });
        }
        Ok((bytes.to_vec(), digest))
    }

    /// The manifest with this digest, its bytes checked against it.
    pub async fn manifest(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<Vec<u8>, OciError> {
        Ok(self
            .manifest_at(repository, &repository.at(digest))
            .await?
            .0)
    }

    /// A blob, its size and digest checked against the descriptor.
    pub async fn blob(
        &self,
        repository: &Repository,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>, OciError> {
        let shown = format!("{repository}@{}", descriptor.digest);
        if descriptor.size > MAX_COMPONENT {
            return Err(OciError::Corrupt {
                reference: shown,
                detail: format!(
                    "the manifest says {} bytes, more than quarry accepts ({MAX_COMPONENT})",
                    descriptor.size
                ),
            });
        }
        // The registry may send more than the manifest says: the writer refuses the excess.
        let mut bytes = Bounded {
            bytes: Vec::with_capacity(descriptor.size.min(64 << 20) as usize),
            limit: descriptor.size as usize,
        };
        let wanted = OciDescriptor {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.clone(),
            size: descriptor.size as i64,
            ..OciDescriptor::default()
        };
        self.inner
            .pull_blob(
                &repository.at(&Digest::parse(&descriptor.digest)?),
                &wanted,
                &mut bytes,
            )
            .await
            .map_err(|e| match e {
                OciDistributionError::IoError(e)
                    if e.kind() == std::io::ErrorKind::FileTooLarge =>
                {
                    OciError::Corrupt {
                        reference: shown.clone(),
                        detail: format!(
                            "the registry sent more than the {} bytes the manifest says",
                            descriptor.size
                        ),
                    }
                }
                e => self.error(&shown, e),
            })?;
        let bytes = bytes.bytes;
        if bytes.len() as u64 != descriptor.size {
            return Err(OciError::Corrupt {
                reference: shown,
                detail: format!(
                    "the download has {} bytes, the manifest says {} (truncated?)",
                    bytes.len(),
                    descriptor.size
                ),
            });
        }
        let digest = Digest::of(&bytes);
        if digest.to_string() != descriptor.digest {
            return Err(OciError::Corrupt {
                reference: shown,
                detail: format!("the download's digest is {digest}"),
            });
        }
        Ok(bytes)
    }

    async fn push_blob(&self, repository: &Repository, bytes: &[u8]) -> Result<(), OciError> {
        let digest = Digest::of(bytes);
        let reference = repository.at(&digest);
        let exists = self
            .inner
            .blob_exists(&reference, &digest.to_string())
            .await
            .unwrap_or(false);
        if !exists {
            self.inner
                .push_blob(&reference, bytes.to_vec(), &digest.to_string())
                .await
                .map_err(|e| self.error(&repository.to_string(), e))?;
        }
        Ok(())
    }

    async fn push_manifest(
        &self,
        repository: &Repository,
        tag: &str,
        manifest: &Manifest,
    ) -> Result<Digest, OciError> {
        let bytes = serde_json::to_vec(manifest).map_err(|e| OciError::Registry {
            registry: self.registry.clone(),
            detail: e.to_string(),
        })?;
        self.inner
            .push_manifest_raw(
                &repository.tagged(tag),
                bytes.clone(),
                http::HeaderValue::from_static(OCI_MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(|e| self.error(&format!("{repository}:{tag}"), e))?;
        Ok(Digest::of(&bytes))
    }

    /// Pushes a component as a Wasm artifact under `tag`; returns the manifest's digest.
    pub async fn push(
        &self,
        repository: &Repository,
        tag: &str,
        publication: Publication<'_>,
    ) -> Result<Digest, OciError> {
        // Make sure the credentials work before uploading megabytes.
        self.inner
            .auth(
                &repository.tagged(tag),
                &self.auth,
                oci_client::RegistryOperation::Push,
            )
            .await
            .map_err(|e| self.error(&format!("{repository}:{tag}"), e))?;
        let layer = Descriptor::of(
            WASM_LAYER_MEDIA_TYPE,
            publication.component,
            BTreeMap::from([(
                "org.opencontainers.image.title".to_string(),
                publication.title,
            )]),
        );
        let config = WasmConfig {
            created: publication.created,
            architecture: "wasm",
            os: "wasip2",
            layer_digests: vec![layer.digest.clone()],
            component: publication.world,
        };
        let config = serde_json::to_vec(&config).map_err(|e| OciError::Registry {
            registry: self.registry.clone(),
            detail: e.to_string(),
        })?;
        self.push_blob(repository, publication.component).await?;
        self.push_blob(repository, &config).await?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST_MEDIA_TYPE.into()),
            artifact_type: None,
            config: Descriptor::of(WASM_CONFIG_MEDIA_TYPE, &config, BTreeMap::new()),
            layers: vec![layer],
            annotations: publication.annotations,
        };
        self.push_manifest(repository, tag, &manifest).await
    }

    /// The signatures stored beside the manifest `digest` (cosign's tag layout), with the
    /// signature manifest's own bytes; `None` when there are none.
    pub async fn signatures(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> Result<Option<(Vec<u8>, Vec<SignatureBlob>)>, OciError> {
        let tag = digest.signature_tag();
        let manifest = match self.manifest_at(repository, &repository.tagged(&tag)).await {
            Ok((bytes, _)) => bytes,
            Err(OciError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let parsed = Manifest::parse(&manifest, &format!("{repository}:{tag}"))?;
        let mut signatures = Vec::new();
        for layer in signature_layers(&parsed) {
            let payload = self.blob(repository, layer).await?;
            signatures.push(SignatureBlob {
                payload,
                signature: layer.annotations[COSIGN_SIGNATURE_ANNOTATION].clone(),
            });
        }
        Ok(Some((manifest, signatures)))
    }

    /// Adds a signature beside the manifest `digest`, keeping the ones already there.
    pub async fn push_signature(
        &self,
        repository: &Repository,
        digest: &Digest,
        signature: SignatureBlob,
    ) -> Result<Digest, OciError> {
        let tag = digest.signature_tag();
        let mut layers = match self.manifest_at(repository, &repository.tagged(&tag)).await {
            Ok((bytes, _)) => Manifest::parse(&bytes, &format!("{repository}:{tag}"))?.layers,
            Err(OciError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let layer = Descriptor::of(
            COSIGN_LAYER_MEDIA_TYPE,
            &signature.payload,
            BTreeMap::from([(
                COSIGN_SIGNATURE_ANNOTATION.to_string(),
                signature.signature.clone(),
            )]),
        );
        if layers.contains(&layer) {
            return Ok(digest.clone());
        }
        self.push_blob(repository, &signature.payload).await?;
        layers.push(layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
            },
        }))
        .map_err(|e| OciError::Registry {
            registry: self.registry.clone(),
            detail: e.to_string(),
        })?;
        self.push_blob(repository, &config).await?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST_MEDIA_TYPE.into()),
            artifact_type: None,
            config: Descriptor::of(OCI_CONFIG_MEDIA_TYPE, &config, BTreeMap::new()),
            layers,
            annotations: BTreeMap::new(),
        };
        self.push_manifest(repository, &tag, &manifest).await
    }
}

/// An in-memory sink that fails once more than `limit` bytes are written.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.bytes.len() + buf.len() > self.limit {
            return std::task::Poll::Ready(Err(std::io::ErrorKind::FileTooLarge.into()));
        }
        self.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// At most this many signatures are read beside one manifest.
pub const MAX_SIGNATURES: usize = 16;

/// The layers of a signature manifest that carry a cosign signature.
pub fn signature_layers(manifest: &Manifest) -> impl Iterator<Item = &Descriptor> {
    manifest
        .layers
        .iter()
        .filter(|l| {
            l.media_type == COSIGN_LAYER_MEDIA_TYPE
                && l.annotations.contains_key(COSIGN_SIGNATURE_ANNOTATION)
                && l.size <= MAX_SIGNATURE_PAYLOAD
        })
        .take(MAX_SIGNATURES)
}

/// An error and its causes, `: `-separated (reqwest hides the useful part in its sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_need_a_registry_host() {
        let r = Repository::parse("127.0.0.1:5000/plugins/test").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.name, "plugins/test");
        assert!(r.is_loopback());
        assert!(!Repository::parse("ghcr.io/acme/x").unwrap().is_loopback());
        assert!(Repository::parse("localhost/x").unwrap().is_loopback());
        for bad in [
            "acme/plugin",
            "plugin",
            "ghcr.io/acme/x:1.0",
            "ghcr.io/Acme/x",
        ] {
            assert!(Repository::parse(bad).is_err(), "{bad}");
        }
        let (r, tag) = Repository::parse_reference("127.0.0.1:5000/p/x:1.2").unwrap();
        assert_eq!((r.name.as_str(), tag.as_deref()), ("p/x", Some("1.2")));
        let (r, tag) = Repository::parse_reference("127.0.0.1:5000/p/x").unwrap();
        assert_eq!((r.registry.as_str(), tag), ("127.0.0.1:5000", None));
    }

    #[test]
    fn versions_are_tags_requirements_or_digests() {
        assert_eq!(Version::parse(None).unwrap(), Version::Latest);
        assert_eq!(
            Version::parse(Some("1.2.3")).unwrap(),
            Version::Tag("1.2.3".into())
        );
        assert!(matches!(
            Version::parse(Some("^1.2")).unwrap(),
            Version::Requirement(_)
        ));
        assert!(matches!(
            Version::parse(Some(&format!("sha256:{}", "a".repeat(64)))).unwrap(),
            Version::Digest(_)
        ));
        assert!(Version::parse(Some("sha256:abc")).is_err());
        assert!(Version::parse(Some(">=1, <")).is_err());
        assert!(Version::parse(Some("../x")).is_err());
    }

    #[test]
    fn only_wasm_artifacts_are_components() {
        let layer = Descriptor::of(WASM_LAYER_MEDIA_TYPE, b"\0asm", BTreeMap::new());
        let mut manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST_MEDIA_TYPE.into()),
            artifact_type: None,
            config: Descriptor::of(WASM_CONFIG_MEDIA_TYPE, b"{}", BTreeMap::new()),
            layers: vec![layer.clone()],
            annotations: BTreeMap::new(),
        };
        assert_eq!(manifest.component("r").unwrap(), &layer);
        manifest.layers.push(layer);
        let err = manifest.component("r").unwrap_err().to_string();
        assert!(err.contains("it has 2 layer(s)"), "{err}");
        manifest.layers.pop();
        manifest.config.media_type = "application/vnd.oci.image.config.v1+json".into();
        let err = manifest.component("r").unwrap_err().to_string();
        assert!(
            err.contains("its config is `application/vnd.oci.image.config.v1+json`"),
            "{err}"
        );
    }
}
