//! Outbound HTTP for sources, over `wasi:http/outgoing-handler`: the host sends each request
//! through its pooled client, and only to hosts granted under `permissions.network`.
//!
//! [`Client::get_all`] keeps many requests in flight at once from one instance (the component is
//! single-threaded; the requests wait on the host together, through `wasi:io/poll`), retries a
//! 429 or 5xx answer and a failed connection with exponential backoff (honouring
//! `Retry-After`), follows redirects (each hop is checked by the host like any request), and
//! returns each URL's result in the order given. A request the sandbox refuses is not retried:
//! its error names the URL and the grant that would allow it.
//!
//! ```ignore
//! let client = quarry_sdk::http::Client::new();
//! let max: u64 = client.get(&format!("{base}/v0/maxitem.json"))?.json()?;
//! for result in client.get_all(&urls, 100) {
//!     let item: Option<Item> = result?.json()?;
//! }
//! ```

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{Error, ErrorKind, Result};

/// How many redirects one request follows before it fails.
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
const MAX_REDIRECTS: u32 = 10;

/// A request: a method, a URL, headers of its own (after the client's) and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ... (upper case).
    pub method: String,
    /// An `http://` or `https://` URL, its query included.
    pub url: String,
    /// Headers sent after the client's, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body; `None` sends none.
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: &str) -> Self {
        Request {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A POST of `body` to `url`.
    pub fn post(url: &str, body: Vec<u8>) -> Self {
        Request {
            method: "POST".into(),
            body: Some(body),
            ..Request::get(url)
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// What a redirect with `status` to `to` asks for next: a 303, and a 301 or 302 of a POST,
    /// continue as a GET without the body (and without the headers that described it), as
    /// browsers and curl do; the rest repeat the request at the new URL.
    /// Credentials (`authorization`, `cookie`) go only to the origin they were meant for: a
    /// redirect to another scheme, host or port drops them.
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    fn redirected(&self, status: u16, to: String) -> Request {
        let origin = |url: &str| {
            split_url(url)
                .ok()
                .map(|(https, authority, _)| (https, authority.to_ascii_lowercase()))
        };
        let same_origin = origin(&self.url).is_some() && origin(&self.url) == origin(&to);
        let as_get = status == 303 || (matches!(status, 301 | 302) && self.method == "POST");
        let as_get = as_get && self.method != "HEAD";
        let headers = self
            .headers
            .iter()
            .filter(|(k, _)| !(as_get && k.starts_with("content-")))
            .filter(|(k, _)| same_origin || (k != "authorization" && k != "cookie"))
            .cloned()
            .collect();
        if as_get {
            Request {
                method: "GET".into(),
                url: to,
                headers,
                body: None,
            }
        } else {
            Request {
                url: to,
                headers,
                ..self.clone()
            }
        }
    }
}

/// An answer: its status, headers and whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The URL that answered (the one asked for, or where redirects led).
    pub url: String,
    /// The HTTP status code.
    pub status: u16,
    /// The headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON. A status other than 2xx is an error that quotes the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        self.ok()?;
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::internal(format!(
                "{}: the answer is not the JSON expected: {e}; it starts with `{}`",
                self.url,
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            ))
        })
    }

    /// Itself if the status is 2xx; otherwise an error that names the status and quotes the body.
    pub fn ok(&self) -> Result<&Self> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let kind = match self.status {
            401 | 403 => ErrorKind::Unauthorized,
            _ => ErrorKind::Unavailable,
        };
        Err(Error::new(
            kind,
            format!(
                "{}: HTTP {}: {}",
                self.url,
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            ),
        ))
    }
}

/// A client: timeouts, retries and headers shared by its requests.
#[derive(Debug, Clone)]
pub struct Client {
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    headers: Vec<(String, String)>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// 30 s per request (connect, first byte, between bytes), 4 retries from 250 ms.
    pub fn new() -> Self {
        Client {
            timeout: Duration::from_secs(30),
            retries: 4,
            backoff: Duration::from_millis(250),
            headers: vec![(
                "user-agent".into(),
                format!("quarry-sdk/{}", env!("CARGO_PKG_VERSION")),
            )],
        }
    }

    /// The time allowed to connect, for the first byte, and between bytes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a request is tried again, and the first wait (doubled each time).
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// A header sent with every request.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// One GET.
    pub fn get(&self, url: &str) -> Result<Response> {
        self.get_all(&[url.to_string()], 1)
            .pop()
            .unwrap_or_else(|| Err(Error::internal("no response")))
    }

    /// GETs every URL with up to `concurrency` in flight; the results in the order of `urls`.
    pub fn get_all(&self, urls: &[String], concurrency: usize) -> Vec<Result<Response>> {
        let requests: Vec<Request> = urls.iter().map(|u| Request::get(u)).collect();
        self.send_all(&requests, concurrency)
    }

    /// One request.
    pub fn send(&self, request: &Request) -> Result<Response> {
        self.send_all(std::slice::from_ref(request), 1)
            .pop()
            .unwrap_or_else(|| Err(Error::internal("no response")))
    }

    /// Sends every request with up to `concurrency` in flight; the results in their order.
    pub fn send_all(&self, requests: &[Request], concurrency: usize) -> Vec<Result<Response>> {
        imp::send_all(self, requests, concurrency.max(1))
    }

    /// The wait before retry `attempt` (1-based): the backoff doubled each time, or what the
    /// server asked for in `Retry-After` (seconds), at most a minute.
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
    fn wait(&self, attempt: u32, retry_after: Option<u64>) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        retry_after
            .map(Duration::from_secs)
            .unwrap_or(doubled)
            .min(Duration::from_secs(60))
    }
}

/// Whether a status is worth asking again.
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
fn retryable(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status)
}

/// Where a redirect's `Location` points, resolved against the URL that sent it.
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
fn redirect_target(from: &str, location: &str) -> Result<String> {
    let location = location.trim();
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_string());
    }
    let (https, authority, path) = split_url(from)?;
    let scheme = if https { "https" } else { "http" };
    if let Some(rest) = location.strip_prefix("//") {
        return Ok(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Ok(format!("{scheme}://{authority}{location}"));
    }
    // Relative to the directory of the current path.
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Ok(format!("{scheme}://{authority}{dir}{location}"))
}

/// `scheme`, `authority` and `path?query` of an `http(s)://` URL.
fn split_url(url: &str) -> Result<(bool, &str, &str)> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(Error::invalid_spec(format!(
            "`{url}` is not an http:// or https:// URL"
        )));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(Error::invalid_spec(format!("`{url}` has no host")));
    }
    Ok((https, authority, path))
}

#[cfg(target_os = "wasi")]
mod imp {
    use std::collections::VecDeque;

    use wasip2::clocks::monotonic_clock;
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method,
        OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };
    use wasip2::io::poll::{Pollable, poll};
    use wasip2::io::streams::{InputStream, StreamError};

    use super::{Client, Request, Response, retryable, split_url};
    use crate::{Error, ErrorKind, Result};

    /// A body being read. Fields drop in order: the stream before its body, the body before
    /// its response, as `wasi:http` requires of child resources.
    struct Reading {
        stream: InputStream,
        body: Option<IncomingBody>,
        _response: IncomingResponse,
        status: u16,
        retry_after: Option<u64>,
        location: Option<String>,
        headers: Vec<(String, String)>,
        bytes: Vec<u8>,
    }

    enum Slot {
        /// Not sent yet, or to be sent again; the attempt number.
        Queued(u32),
        Sending(FutureIncomingResponse, u32),
        Reading(Box<Reading>, u32),
        /// Waiting before attempt `.1`.
        Sleeping(Pollable, u32),
        Done,
    }

    pub fn send_all(
        client: &Client,
        requests: &[Request],
        concurrency: usize,
    ) -> Vec<Result<Response>> {
        // What each request is now (redirects move it), and how many hops it took.
        let mut requests: Vec<Request> = requests.to_vec();
        let mut hops: Vec<u32> = requests.iter().map(|_| 0).collect();
        let mut results: Vec<Option<Result<Response>>> = requests.iter().map(|_| None).collect();
        let mut slots: Vec<Slot> = requests.iter().map(|_| Slot::Queued(0)).collect();
        let mut queue: VecDeque<usize> = (0..requests.len()).collect();
        let mut active = 0usize;
        loop {
            // Start queued requests while there is room.
            while active < concurrency {
                let Some(i) = queue.pop_front() else { break };
                let attempt = match slots[i] {
                    Slot::Queued(a) => a,
                    _ => continue,
                };
                match send(client, &requests[i]) {
                    Ok(future) => {
                        slots[i] = Slot::Sending(future, attempt);
                        active += 1;
                    }
                    Err(e) => {
                        results[i] = Some(Err(e));
                        slots[i] = Slot::Done;
                    }
                }
            }
            if active == 0 {
                break;
            }
            // New pollables for requests and bodies; sleeping slots wait on their own timers.
            let mut waiting: Vec<(usize, Pollable)> = Vec::new();
            let mut sleeping: Vec<usize> = Vec::new();
            for (i, slot) in slots.iter().enumerate() {
                match slot {
                    Slot::Sending(future, _) => waiting.push((i, future.subscribe())),
                    Slot::Reading(reading, _) => waiting.push((i, reading.stream.subscribe())),
                    Slot::Sleeping(..) => sleeping.push(i),
                    Slot::Queued(_) | Slot::Done => {}
                }
            }
            let mut refs: Vec<&Pollable> = waiting.iter().map(|(_, p)| p).collect();
            for &i in &sleeping {
                if let Slot::Sleeping(p, _) = &slots[i] {
                    refs.push(p);
                }
            }
            let ready = poll(&refs);
            drop(refs);
            let ready: Vec<usize> = ready
                .into_iter()
                .map(|r| r as usize)
                .map(|r| {
                    if r < waiting.len() {
                        waiting[r].0
                    } else {
                        sleeping[r - waiting.len()]
                    }
                })
                .collect();
            drop(waiting);
            for i in ready {
                let slot = std::mem::replace(&mut slots[i], Slot::Done);
                let (next, outcome) = advance(client, &requests[i].url, slot);
                match outcome {
                    Some(Outcome::Finished(result)) => {
                        results[i] = Some(result);
                        active -= 1;
                    }
                    Some(Outcome::Retry(attempt, wait)) => {
                        let nanos = wait.as_nanos().min(u64::MAX as u128) as u64;
                        slots[i] =
                            Slot::Sleeping(monotonic_clock::subscribe_duration(nanos), attempt);
                        continue;
                    }
                    Some(Outcome::Resend(attempt)) => {
                        active -= 1;
                        slots[i] = Slot::Queued(attempt);
                        queue.push_front(i);
                        continue;
                    }
                    Some(Outcome::Redirect(status, to)) => {
                        active -= 1;
                        hops[i] += 1;
                        if hops[i] > super::MAX_REDIRECTS {
                            results[i] = Some(Err(Error::unavailable(format!(
                                "{}: more than {} redirects (the last to {to})",
                                requests[i].url,
                                super::MAX_REDIRECTS
                            ))));
                            continue;
                        }
                        requests[i] = requests[i].redirected(status, to);
                        slots[i] = Slot::Queued(0);
                        queue.push_front(i);
                        continue;
                    }
                    None => {}
                }
                slots[i] = next;
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("request not completed"))))
            .collect()
    }

    enum Outcome {
        Finished(Result<Response>),
        /// Wait, then send again as this attempt.
        Retry(u32, std::time::Duration),
        /// Send again now (after a wait).
        Resend(u32),
        /// Send to this URL instead (a redirect with this status).
        Redirect(u16, String),
    }

    fn advance(client: &Client, url: &str, slot: Slot) -> (Slot, Option<Outcome>) {
        match slot {
            Slot::Sending(future, attempt) => match future.get() {
                None => (Slot::Sending(future, attempt), None),
                Some(Err(())) | Some(Ok(Err(ErrorCode::InternalError(None)))) => (
                    Slot::Done,
                    Some(retry_or(client, attempt, None, || {
                        Error::unavailable(format!("{url}: the request failed in the host"))
                    })),
                ),
                Some(Ok(Err(code))) => {
                    let error = transport_error(url, &code);
                    if transient(&code) {
                        (Slot::Done, Some(retry_or(client, attempt, None, || error)))
                    } else {
                        (Slot::Done, Some(Outcome::Finished(Err(error))))
                    }
                }
                Some(Ok(Ok(response))) => match start_reading(response) {
                    Ok(reading) => {
                        let slot = Slot::Reading(Box::new(reading), attempt);
                        // Bytes may be there already.
                        advance(client, url, slot)
                    }
                    Err(e) => (Slot::Done, Some(Outcome::Finished(Err(e)))),
                },
            },
            Slot::Reading(mut reading, attempt) => loop {
                match reading.stream.read(64 * 1024) {
                    Ok(bytes) if bytes.is_empty() => {
                        return (Slot::Reading(reading, attempt), None);
                    }
                    Ok(bytes) => reading.bytes.extend_from_slice(&bytes),
                    Err(StreamError::Closed) => {
                        let Reading {
                            stream,
                            body,
                            _response,
                            status,
                            retry_after,
                            location,
                            headers,
                            bytes,
                        } = *reading;
                        drop(stream);
                        if let Some(body) = body {
                            drop(IncomingBody::finish(body));
                        }
                        drop(_response);
                        if let (301 | 302 | 303 | 307 | 308, Some(location)) = (status, location) {
                            let outcome = match super::redirect_target(url, &location) {
                                Ok(to) => Outcome::Redirect(status, to),
                                Err(e) => Outcome::Finished(Err(
                                    e.context(format!("{url}: HTTP {status} to `{location}`"))
                                )),
                            };
                            return (Slot::Done, Some(outcome));
                        }
                        if retryable(status) && attempt < client.retries {
                            return (
                                Slot::Done,
                                Some(Outcome::Retry(
                                    attempt + 1,
                                    client.wait(attempt + 1, retry_after),
                                )),
                            );
                        }
                        let response = Response {
                            url: url.to_string(),
                            status,
                            headers,
                            body: bytes,
                        };
                        return (Slot::Done, Some(Outcome::Finished(Ok(response))));
                    }
                    Err(StreamError::LastOperationFailed(e)) => {
                        let error = Error::unavailable(format!(
                            "{url}: reading the answer failed: {}",
                            e.to_debug_string()
                        ));
                        return (Slot::Done, Some(retry_or(client, attempt, None, || error)));
                    }
                }
            },
            Slot::Sleeping(_, attempt) => (Slot::Done, Some(Outcome::Resend(attempt))),
            other => (other, None),
        }
    }

    fn retry_or(
        client: &Client,
        attempt: u32,
        retry_after: Option<u64>,
        error: impl FnOnce() -> Error,
    ) -> Outcome {
        if attempt < client.retries {
            Outcome::Retry(attempt + 1, client.wait(attempt + 1, retry_after))
        } else {
            Outcome::Finished(Err(
                error().context(format!("after {} attempts", attempt + 1))
            ))
        }
    }

    fn start_reading(response: IncomingResponse) -> Result<Reading> {
        let status = response.status();
        let headers = response.headers();
        let header = |name: &str| {
            let values = headers.get(name);
            values
                .first()
                .and_then(|v| String::from_utf8(v.clone()).ok())
        };
        let retry_after = header("retry-after").and_then(|v| v.trim().parse().ok());
        let location = header("location");
        let all = headers
            .entries()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        drop(headers);
        let body = response
            .consume()
            .map_err(|()| Error::internal("the response body was taken twice"))?;
        let stream = body
            .stream()
            .map_err(|()| Error::internal("the response stream was taken twice"))?;
        Ok(Reading {
            stream,
            body: Some(body),
            _response: response,
            status,
            retry_after,
            location,
            headers: all,
            bytes: Vec::new(),
        })
    }

    fn send(client: &Client, request: &Request) -> Result<FutureIncomingResponse> {
        let url = request.url.as_str();
        let (https, authority, path) = split_url(url)?;
        // The request's own headers replace the client's of the same name.
        let mut headers: Vec<(String, Vec<u8>)> = client
            .headers
            .iter()
            .filter(|(k, _)| !request.headers.iter().any(|(own, _)| own == k))
            .chain(request.headers.iter())
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        // A body of known length says so: without it the host sends it chunked, which many
        // servers (and form parsers) do not read.
        if let Some(body) = &request.body
            && !headers.iter().any(|(k, _)| k == "content-length")
        {
            headers.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
        let fields = Fields::from_list(&headers)
            .map_err(|e| Error::invalid_spec(format!("a header of the request to {url}: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let invalid = |what: &str| Error::invalid_spec(format!("{url}: invalid {what}"));
        let method = match request_method(&request.method) {
            Some(m) => m,
            None => Method::Other(request.method.clone()),
        };
        let wanted = request;
        let request = outgoing;
        request
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        let scheme = if https { Scheme::Https } else { Scheme::Http };
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| invalid("host"))?;
        request
            .set_path_with_query(Some(path))
            .map_err(|()| invalid("path"))?;
        let body = request
            .body()
            .map_err(|()| Error::internal("the request body was taken twice"))?;
        let options = RequestOptions::new();
        let nanos = client.timeout.as_nanos().min(u64::MAX as u128) as u64;
        // A host that does not support a timeout keeps its own: not an error.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));
        let future = outgoing_handler::handle(request, Some(options))
            .map_err(|code| transport_error(url, &code))?;
        if let Some(bytes) = &wanted.body {
            // A body the host will not take (the request was refused) is left: the refusal is
            // what the response future reports.
            if let Ok(stream) = body.write() {
                for chunk in bytes.chunks(4096) {
                    if stream.blocking_write_and_flush(chunk).is_err() {
                        break;
                    }
                }
                drop(stream);
            }
        }
        let _ = OutgoingBody::finish(body, None);
        Ok(future)
    }

    fn request_method(name: &str) -> Option<Method> {
        Some(match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    /// Failures that may pass: worth another attempt.
    fn transient(code: &ErrorCode) -> bool {
        matches!(
            code,
            ErrorCode::DnsTimeout
                | ErrorCode::DestinationUnavailable
                | ErrorCode::ConnectionRefused
                | ErrorCode::ConnectionTerminated
                | ErrorCode::ConnectionTimeout
                | ErrorCode::ConnectionReadTimeout
                | ErrorCode::ConnectionWriteTimeout
                | ErrorCode::ConnectionLimitReached
                | ErrorCode::HttpResponseTimeout
        )
    }

    fn transport_error(url: &str, code: &ErrorCode) -> Error {
        let unavailable = |what: &str| Error::unavailable(format!("{url}: {what}"));
        match code {
            // The host's words: what was refused and which grant would allow it, or what failed.
            ErrorCode::InternalError(Some(message)) if message.contains(" was denied: ") => {
                Error::new(ErrorKind::Unauthorized, message.clone())
            }
            ErrorCode::InternalError(Some(message)) => Error::unavailable(message.clone()),
            ErrorCode::HttpRequestDenied => Error::new(
                ErrorKind::Unauthorized,
                format!("{url}: denied by the sandbox; grant its host under permissions.network"),
            ),
            ErrorCode::DnsError(dns) => unavailable(
                dns.rcode
                    .as_deref()
                    .unwrap_or("the host name cannot be resolved"),
            ),
            ErrorCode::DnsTimeout => unavailable("resolving the host name timed out"),
            ErrorCode::ConnectionRefused => unavailable("the connection was refused"),
            ErrorCode::ConnectionTerminated => unavailable("the connection was closed early"),
            ErrorCode::ConnectionTimeout => unavailable("connecting timed out"),
            ErrorCode::ConnectionReadTimeout => {
                unavailable("the answer stopped arriving (between-bytes timeout)")
            }
            ErrorCode::HttpResponseTimeout => unavailable("no answer in time"),
            other => unavailable(&format!("{other:?}")),
        }
    }
}

#[cfg(not(target_os = "wasi"))]
mod imp {
    use super::{Client, Request, Response};
    use crate::{Error, Result};

    /// Outside a component there is no host to send through.
    pub fn send_all(_: &Client, requests: &[Request], _: usize) -> Vec<Result<Response>> {
        requests
            .iter()
            .map(|r| {
                let _ = super::split_url(&r.url);
                Err(Error::not_supported(format!(
                    "{}: outbound HTTP needs the Quarry host (build for wasm32-wasip2)",
                    r.url
                )))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_host_and_path() {
        assert_eq!(
            split_url("https://hacker-news.firebaseio.com/v0/item/1.json?print=pretty").unwrap(),
            (
                true,
                "hacker-news.firebaseio.com",
                "/v0/item/1.json?print=pretty"
            )
        );
        assert_eq!(
            split_url("http://127.0.0.1:8080").unwrap(),
            (false, "127.0.0.1:8080", "/")
        );
        assert!(split_url("ftp://x/").is_err());
        assert!(split_url("https:///x").is_err());
    }

    #[test]
    fn a_redirected_post_continues_as_a_get_only_where_clients_do_so() {
        let post = Request::post("http://a/token", b"x=1".to_vec())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Authorization", "Basic abc");
        for status in [301, 302, 303] {
            let next = post.redirected(status, "http://a/other".into());
            assert_eq!(next.method, "GET", "{status}");
            assert_eq!(next.body, None);
            assert_eq!(next.headers, [("authorization".into(), "Basic abc".into())]);
        }
        for status in [307, 308] {
            let next = post.redirected(status, "http://a/other".into());
            assert_eq!(
                next,
                Request {
                    url: "http://a/other".into(),
                    ..post.clone()
                }
            );
        }
        let get = Request::get("http://a/x").redirected(303, "http://a/y".into());
        assert_eq!(get, Request::get("http://a/y"));
        // Credentials stay with their origin.
        let elsewhere = post.redirected(307, "https://a/other".into());
        assert_eq!(
            elsewhere.headers,
            [(
                "content-type".into(),
                "application/x-www-form-urlencoded".into()
            )]
        );
        let port = Request::get("http://a/x")
            .header("Cookie", "c")
            .redirected(302, "http://a:8080/y".into());
        assert!(port.headers.is_empty());
    }

    #[test]
    fn redirects_resolve_against_the_url_that_sent_them() {
        let from = "http://127.0.0.1:8080/v0/item/1.json?print=pretty";
        let to = |l: &str| redirect_target(from, l).unwrap();
        assert_eq!(to("https://example.com/x"), "https://example.com/x");
        assert_eq!(to("//cdn.example.com/x"), "http://cdn.example.com/x");
        assert_eq!(
            to("/v1/item/1.json"),
            "http://127.0.0.1:8080/v1/item/1.json"
        );
        assert_eq!(to("2.json"), "http://127.0.0.1:8080/v0/item/2.json");
    }

    #[test]
    fn retries_back_off_and_honour_retry_after() {
        let client = Client::new().retries(3, Duration::from_millis(100));
        assert_eq!(client.wait(1, None), Duration::from_millis(100));
        assert_eq!(client.wait(3, None), Duration::from_millis(400));
        assert_eq!(client.wait(2, Some(7)), Duration::from_secs(7));
        assert_eq!(client.wait(1, Some(3600)), Duration::from_secs(60));
        assert!(retryable(503) && retryable(429) && !retryable(404));
    }

    #[test]
    fn a_status_other_than_2xx_is_an_error_that_quotes_the_body() {
        let response = Response {
            url: "http://x/y".into(),
            status: 503,
            headers: vec![("retry-after".into(), "1".into())],
            body: b"busy".to_vec(),
        };
        assert_eq!(response.header("Retry-After"), Some("1"));
        assert_eq!(response.header("link"), None);
        let err = response.json::<u64>().unwrap_err();
        assert_eq!(err.message, "http://x/y: HTTP 503: busy");
        let ok = Response {
            status: 200,
            body: b"42".to_vec(),
            ..response
        };
        assert_eq!(ok.json::<u64>().unwrap(), 42);
    }
}
