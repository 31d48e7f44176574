//! Authentication: a header or a query parameter on every request, or an OAuth 2 token asked
//! for with the client's credentials and renewed when it expires or is refused.

use std::time::{Duration, Instant};

use quarry_sdk::http::Request;
use quarry_sdk::{Error, ErrorKind, Result};

use crate::Transport;
use crate::paginate::{Call, encode};
use crate::spec::{AuthSpec, KeyLocation};

pub enum Auth {
    None,
    Header(String, String),
    Query(String, String),
    OAuth2 {
        url: String,
        form: Vec<(String, String)>,
        token: Option<(String, Option<Instant>)>,
    },
}

/// RFC 4648 base64, for `Authorization: Basic`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Auth {
    pub fn new(spec: Option<&AuthSpec>) -> Auth {
        match spec {
            None => Auth::None,
            Some(AuthSpec::Bearer { token }) => {
                Auth::Header("authorization".into(), format!("Bearer {token}"))
            }
            Some(AuthSpec::ApiKey {
                name,
                api_key,
                location: KeyLocation::Header,
            }) => Auth::Header(name.clone(), api_key.clone()),
            Some(AuthSpec::ApiKey {
                name,
                api_key,
                location: KeyLocation::Query,
            }) => Auth::Query(name.clone(), api_key.clone()),
            Some(AuthSpec::HttpBasic { username, password }) => Auth::Header(
                "authorization".into(),
                format!(
                    "Basic {}",
                    base64(format!("{username}:{password}").as_bytes())
                ),
            ),
            Some(AuthSpec::Oauth2ClientCredentials {
                access_token_url,
                client_id,
                client_secret,
                scopes,
                access_token_request_data,
            }) => {
                let mut form = vec![
                    ("grant_type".to_string(), "client_credentials".to_string()),
                    ("client_id".to_string(), client_id.clone()),
                    ("client_secret".to_string(), client_secret.clone()),
                ];
                if !scopes.is_empty() {
                    form.push(("scope".into(), scopes.join(" ")));
                }
                form.extend(access_token_request_data.clone());
                Auth::OAuth2 {
                    url: access_token_url.clone(),
                    form,
                    token: None,
                }
            }
        }
    }

    /// `call` as an authenticated request (asking for a token first if there is none, or it
    /// has expired).
    pub fn request(
        &mut self,
        transport: &dyn Transport,
        call: &Call,
        headers: &[(String, String)],
    ) -> Result<Request> {
        match self {
            Auth::None => Ok(call.request(headers)),
            Auth::Header(name, value) => Ok(call.request(headers).header(name, value)),
            Auth::Query(name, value) => {
                let mut call = call.clone();
                if !call.url.contains(&format!("{}=", encode(name))) {
                    call.set(name, value.clone());
                }
                Ok(call.request(headers))
            }
            Auth::OAuth2 { url, form, token } => {
                let fresh = token
                    .as_ref()
                    .is_some_and(|(_, until)| until.is_none_or(|t| Instant::now() < t));
                if !fresh {
                    *token = Some(fetch_token(transport, url, form)?);
                }
                let bearer = &token.as_ref().expect("a token was just set").0;
                Ok(call
                    .request(headers)
                    .header("authorization", &format!("Bearer {bearer}")))
            }
        }
    }

    /// After a 401: whether asking again may help (an OAuth 2 token, dropped so that the next
    /// request asks for a new one).
    pub fn refused(&mut self) -> bool {
        match self {
            Auth::OAuth2 { token, .. } => token.take().is_some(),
            _ => false,
        }
    }
}

/// Asks for a token: a form POST; the answer's `access_token`, and when it expires (a minute
/// early, from `expires_in`).
fn fetch_token(
    transport: &dyn Transport,
    url: &str,
    form: &[(String, String)],
) -> Result<(String, Option<Instant>)> {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let request = Request::post(url, body.join("&").into_bytes())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json");
    let response = transport
        .send_all(&[request], 1)
        .pop()
        .unwrap_or_else(|| Err(Error::internal("no response")))
        .map_err(|e| e.context("OAuth 2 token request"))?;
    if !(200..300).contains(&response.status) {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            format!(
                "OAuth 2 token request to {url}: HTTP {}: {} (check client_id and client_secret)",
                response.status,
                String::from_utf8_lossy(&response.body[..response.body.len().min(300)])
            ),
        ));
    }
    let answer: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| {
        Error::new(
            ErrorKind::Unauthorized,
            format!("OAuth 2 token request to {url}: the answer is not JSON ({e})"),
        )
    })?;
    let token = answer
        .get("access_token")
        .and_then(|t| t.as_str())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                format!("OAuth 2 token request to {url}: the answer has no access_token"),
            )
        })?;
    let expires = answer
        .get("expires_in")
        .and_then(|e| e.as_u64().or_else(|| e.as_str()?.parse().ok()))
        .map(|s| Instant::now() + Duration::from_secs(s.saturating_sub(60)));
    Ok((token.to_string(), expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_encode_as_rfc_4648_says() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
    }
}
