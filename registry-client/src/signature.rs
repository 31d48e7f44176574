//! Signatures in cosign's key-based format, made and checked offline with ring.
//!
//! A signature says "this key vouches for manifest `sha256:…`": its payload is cosign's simple
//! signing document (`critical.image.docker-manifest-digest`), signed with ECDSA P-256 / SHA-256
//! (DER, base64), and stored as a layer of the manifest tagged `sha256-<hex>.sig` in the same
//! repository. `cosign sign --key` makes the same thing and `cosign verify --key` checks what
//! Quarry makes; `openssl dgst -sha256 -verify` checks a payload and its signature by hand.
//!
//! Keys are PEM: public keys as SPKI (`PUBLIC KEY`, as `cosign.pub` is), private keys as
//! unencrypted PKCS#8 (`PRIVATE KEY`, as `openssl genpkey` writes).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::oci::SignatureBlob;

/// SPKI header of an uncompressed P-256 key: SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 },
/// BIT STRING (65 bytes follow) }.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The `critical.type` of a cosign signature payload.
const PAYLOAD_TYPE: &str = "cosign container image signature";

/// Why a key or a signature is not good.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A key that cannot be read.
    #[error("{origin}: {why}")]
    BadKey {
        /// The file (or `inline key`).
        origin: String,
        /// What is wrong.
        why: String,
    },
    /// No signature at all.
    #[error(
        "it is not signed, and a signature by {expected} is required; sign it with `quarry plugin sign --key <private key> <reference>`"
    )]
    Unsigned {
        /// The fingerprints of the keys trusted.
        expected: String,
    },
    /// Signatures, but none by a trusted key over this digest.
    #[error(
        "none of its {found} signature(s) is by a trusted key ({expected}) over {digest} in this repository; it was signed by someone else, or for other bytes or another repository"
    )]
    Untrusted {
        /// How many signatures were found.
        found: usize,
        /// The fingerprints of the keys trusted.
        expected: String,
        /// The manifest digest.
        digest: Digest,
    },
}

/// A public key trusted to sign plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki: Vec<u8>,
    origin: String,
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM (ECDSA P-256); `origin` names it in errors.
    pub fn from_pem(text: &str, origin: &str) -> Result<Self, SignatureError> {
        let bad = |why: &str| SignatureError::BadKey {
            origin: origin.into(),
            why: why.into(),
        };
        let der = pem_block(text, "PUBLIC KEY").ok_or_else(|| {
            bad("not a PEM public key (expected `-----BEGIN PUBLIC KEY-----`, as cosign.pub or `openssl pkey -pubout` write)")
        })?;
        if der.len() != SPKI_P256_PREFIX.len() + 65 || !der.starts_with(&SPKI_P256_PREFIX) {
            return Err(bad(
                "not an ECDSA P-256 public key (the only kind cosign's key-based signatures use)",
            ));
        }
        Ok(PublicKey {
            spki: der,
            origin: origin.into(),
        })
    }

    /// `sha256:` and the first 16 hex digits of the sha256 of the key's DER: how messages and
    /// the lock name a key.
    pub fn fingerprint(&self) -> String {
        let hash = Sha256::digest(&self.spki);
        let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// Where the key came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key as PEM.
    pub fn to_pem(&self) -> String {
        to_pem("PUBLIC KEY", &self.spki)
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let point = &self.spki[SPKI_P256_PREFIX.len()..];
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(message, signature)
            .is_ok()
    }
}

/// A private key that signs plugins.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
}

impl SigningKey {
    /// Reads an unencrypted PKCS#8 `PRIVATE KEY` PEM (ECDSA P-256).
    pub fn from_pem(text: &str, origin: &str) -> Result<Self, SignatureError> {
        let bad = |why: &str| SignatureError::BadKey {
            origin: origin.into(),
            why: why.into(),
        };
        if text.contains("ENCRYPTED") {
            return Err(bad(
                "an encrypted private key; quarry reads unencrypted PKCS#8 (`quarry plugin keygen`, or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)",
            ));
        }
        let der = pem_block(text, "PRIVATE KEY")
            .ok_or_else(|| bad("not a PEM private key (expected `-----BEGIN PRIVATE KEY-----`)"))?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &der,
            &SystemRandom::new(),
        )
        .map_err(|_| bad("not an ECDSA P-256 private key in PKCS#8"))?;
        let mut spki = SPKI_P256_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        Ok(SigningKey {
            pair,
            public: PublicKey {
                spki,
                origin: origin.into(),
            },
        })
    }

    /// A new key pair: the private key as PKCS#8 PEM, and the key.
    pub fn generate() -> Result<(String, SigningKey), SignatureError> {
        let failed = |why: &str| SignatureError::BadKey {
            origin: "new key".into(),
            why: why.into(),
        };
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        .map_err(|_| failed("the system gave no random bytes"))?;
        let pem = to_pem("PRIVATE KEY", pkcs8.as_ref());
        let key = SigningKey::from_pem(&pem, "new key")?;
        Ok((pem, key))
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs manifest `digest` of `repository`: cosign's payload and its signature.
    pub fn sign(&self, repository: &str, digest: &Digest) -> Result<SignatureBlob, SignatureError> {
        let payload = serde_json::to_vec(&serde_json::json!({
            "critical": {
                "identity": { "docker-reference": repository },
                "image": { "docker-manifest-digest": digest.to_string() },
                "type": PAYLOAD_TYPE,
            },
            "optional": null,
        }))
        .map_err(|e| SignatureError::BadKey {
            origin: self.public.origin.clone(),
            why: e.to_string(),
        })?;
        let signature = self
            .pair
            .sign(&SystemRandom::new(), &payload)
            .map_err(|_| SignatureError::BadKey {
                origin: self.public.origin.clone(),
                why: "signing failed".into(),
            })?;
        Ok(SignatureBlob {
            payload,
            signature: BASE64.encode(signature.as_ref()),
        })
    }
}

/// The repository and manifest digest a payload vouches for, if it is a cosign signature payload.
fn signed_claim(payload: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let critical = value.get("critical")?;
    if critical.get("type")?.as_str()? != PAYLOAD_TYPE {
        return None;
    }
    let text =
        |v: &serde_json::Value, a: &str, b: &str| Some(v.get(a)?.get(b)?.as_str()?.to_string());
    Some((
        text(critical, "identity", "docker-reference")?,
        text(critical, "image", "docker-manifest-digest")?,
    ))
}

/// The first trusted key that signed `digest` of `repository` among `signatures`, or why none
/// did. A signature for the same bytes in another repository does not count: a registry cannot
/// serve a signed plugin under another plugin's name.
pub fn verify<'k>(
    trusted: &'k [PublicKey],
    signatures: &[SignatureBlob],
    repository: &str,
    digest: &Digest,
) -> Result<&'k PublicKey, SignatureError> {
    let expected = || {
        trusted
            .iter()
            .map(|k| format!("{} ({})", k.fingerprint(), k.origin))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    if signatures.is_empty() {
        return Err(SignatureError::Unsigned {
            expected: expected(),
        });
    }
    let wanted = (repository.to_string(), digest.to_string());
    for blob in signatures {
        if signed_claim(&blob.payload).as_ref() != Some(&wanted) {
            continue;
        }
        let Ok(signature) = BASE64.decode(blob.signature.trim()) else {
            continue;
        };
        if let Some(key) = trusted
            .iter()
            .find(|k| k.verifies(&blob.payload, &signature))
        {
            return Ok(key);
        }
    }
    Err(SignatureError::Untrusted {
        found: signatures.len(),
        expected: expected(),
        digest: digest.clone(),
    })
}

fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64.decode(body).ok()
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_under_the_trusted_key_and_digest() {
        let (private, key) = SigningKey::generate().unwrap();
        let reread = SigningKey::from_pem(&private, "k.pem").unwrap();
        assert_eq!(reread.public().spki, key.public().spki);
        let public = PublicKey::from_pem(&key.public().to_pem(), "k.pub").unwrap();
        let digest = Digest::of(b"manifest");
        let blob = key.sign("127.0.0.1:5000/p", &digest).unwrap();
        let trusted = [public.clone()];
        let repo = "127.0.0.1:5000/p";
        let one = std::slice::from_ref(&blob);
        assert_eq!(verify(&trusted, one, repo, &digest).unwrap(), &public);
        // The same signature presented for another repository does not count.
        assert!(verify(&trusted, one, "127.0.0.1:5000/q", &digest).is_err());
        // Another digest, another key, a changed payload, no signature at all.
        let other = Digest::of(b"other");
        assert!(matches!(
            verify(&trusted, one, repo, &other),
            Err(SignatureError::Untrusted { .. })
        ));
        let (_, stranger) = SigningKey::generate().unwrap();
        let err = verify(&[stranger.public().clone()], one, repo, &digest).unwrap_err();
        assert!(
            err.to_string().contains(&stranger.public().fingerprint()),
            "{err}"
        );
        let mut forged = blob.clone();
        forged.payload = String::from_utf8(forged.payload)
            .unwrap()
            .replace("127.0.0.1", "127.0.0.2")
            .into_bytes();
        assert!(verify(&trusted, &[forged], repo, &digest).is_err());
        assert!(matches!(
            verify(&trusted, &[], repo, &digest),
            Err(SignatureError::Unsigned { .. })
        ));
    }

    #[test]
    fn keys_that_are_not_p256_pem_are_refused_by_name() {
        let err = PublicKey::from_pem("hello", "team.pub")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("team.pub: not a PEM public key"), "{err}");
        let err = SigningKey::from_pem(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAA==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "cosign.key",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("an encrypted private key"), "{err}");
    }
}
