//! Requests as the source builds them ([`Call`]), and the paginators that turn one page's answer
//! into the next page's request.

use quarry_sdk::http::{Request, Response};
use quarry_sdk::{Error, Result};
use serde_json::Value;

use crate::records::at_path;
use crate::spec::PaginatorSpec;

/// A request before authentication: a URL (which may hold a query already), query parameters to
/// add, and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub url: String,
    pub query: Vec<(String, String)>,
    pub json: Option<Value>,
}

impl Call {
    /// Sets query parameter `name`, replacing an earlier value.
    pub fn set(&mut self, name: &str, value: String) {
        match self.query.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.query.push((name.to_string(), value)),
        }
    }

    /// The full URL, the parameters percent-encoded after the URL's own query.
    pub fn full_url(&self) -> String {
        if self.query.is_empty() {
            return self.url.clone();
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let joiner = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{joiner}{}", self.url, query.join("&"))
    }

    /// The HTTP request, with the client's headers.
    pub fn request(&self, headers: &[(String, String)]) -> Request {
        let mut request = match &self.json {
            Some(body) => Request {
                method: self.method.clone(),
                ..Request::post(&self.full_url(), body.to_string().into_bytes())
            }
            .header("content-type", "application/json"),
            None => Request {
                method: self.method.clone(),
                ..Request::get(&self.full_url())
            },
        };
        for (k, v) in headers {
            request = request.header(k, v);
        }
        request
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A URL from an answer (a next link), resolved against the URL that was asked.
pub fn resolve_url(from: &str, link: &str) -> String {
    let link = link.trim();
    if link.starts_with("http://") || link.starts_with("https://") {
        return link.to_string();
    }
    let scheme_end = from.find("://").map_or(0, |i| i + 3);
    let authority_end = from[scheme_end..]
        .find('/')
        .map_or(from.len(), |i| scheme_end + i);
    if link.starts_with('/') {
        return format!("{}{link}", &from[..authority_end]);
    }
    if link.starts_with('?') {
        let path_end = from.find('?').unwrap_or(from.len());
        return format!("{}{link}", &from[..path_end]);
    }
    let path = &from[..from.find('?').unwrap_or(from.len())];
    let dir = &path[..path
        .rfind('/')
        .filter(|&i| i >= authority_end)
        .map_or(path.len(), |i| i + 1)];
    if dir.ends_with('/') {
        format!("{dir}{link}")
    } else {
        format!("{dir}/{link}")
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| url.to_string())
    })
}

/// Where a next-page URL is looked for when the paginator is detected.
const NEXT_URL_PATHS: &[&str] = &[
    "next",
    "next_url",
    "links.next",
    "links.next.href",
    "_links.next.href",
    "_links.next",
    "paging.next",
    "pagination.next",
    "meta.next",
];

/// A paginator with where it is.
#[derive(Debug, Clone)]
pub enum Pager {
    /// Not decided until the first answer.
    Auto,
    Single,
    JsonLink(Option<String>),
    HeaderLink,
    Offset {
        limit: u64,
        offset: u64,
        offset_param: String,
        limit_param: String,
        total_path: Option<String>,
    },
    Page {
        page: u64,
        base: u64,
        param: String,
        total_path: Option<String>,
    },
    Cursor {
        path: String,
        param: String,
    },
}

impl Pager {
    pub fn new(spec: Option<&PaginatorSpec>) -> Pager {
        match spec {
            None | Some(PaginatorSpec::Auto) => Pager::Auto,
            Some(PaginatorSpec::SinglePage) => Pager::Single,
            Some(PaginatorSpec::JsonLink { next_url_path }) => {
                Pager::JsonLink(next_url_path.clone())
            }
            Some(PaginatorSpec::HeaderLink) => Pager::HeaderLink,
            Some(PaginatorSpec::Offset {
                limit,
                offset,
                offset_param,
                limit_param,
                total_path,
            }) => Pager::Offset {
                limit: *limit,
                offset: *offset,
                offset_param: offset_param.clone(),
                limit_param: limit_param.clone(),
                total_path: total_path.clone(),
            },
            Some(PaginatorSpec::PageNumber {
                page_param,
                base_page,
                total_path,
            }) => Pager::Page {
                page: *base_page,
                base: *base_page,
                param: page_param.clone(),
                total_path: total_path.clone(),
            },
            Some(PaginatorSpec::Cursor {
                cursor_path,
                cursor_param,
            }) => Pager::Cursor {
                path: cursor_path.clone(),
                param: cursor_param.clone(),
            },
        }
    }

    /// The parameters of the first page.
    pub fn first(&self, call: &mut Call) {
        match self {
            Pager::Offset {
                limit,
                offset,
                offset_param,
                limit_param,
                ..
            } => {
                call.set(offset_param, offset.to_string());
                call.set(limit_param, limit.to_string());
            }
            Pager::Page { page, param, .. } => call.set(param, page.to_string()),
            _ => {}
        }
    }

    /// The request for the page after `call`'s, whose answer was `response` (`body`, with
    /// `records` records), or `None` after the last page.
    pub fn next(
        &mut self,
        call: &Call,
        response: &Response,
        body: &Value,
        records: usize,
    ) -> Result<Option<Call>> {
        if let Pager::Auto = self {
            *self = detect(response, body);
        }
        let link = |url: String| Call {
            url: resolve_url(&response.url, &url),
            query: Vec::new(),
            ..call.clone()
        };
        let next = match self {
            Pager::Auto | Pager::Single => None,
            Pager::JsonLink(path) => {
                let found = match path {
                    Some(path) => at_path(body, path),
                    None => NEXT_URL_PATHS.iter().find_map(|p| at_path(body, p)),
                };
                match found {
                    Some(Value::String(url)) if !url.is_empty() => Some(link(url.clone())),
                    None | Some(Value::Null) | Some(Value::String(_)) => None,
                    Some(other) => {
                        return Err(Error::internal(format!(
                            "the next page's link is `{other}`, not a URL"
                        )));
                    }
                }
            }
            Pager::HeaderLink => response.header("link").and_then(next_link).map(link),
            Pager::Offset {
                offset,
                offset_param,
                total_path,
                ..
            } => {
                // By what the page held: a server that caps the page size below `limit` is
                // still read whole. Without a total, only an empty page says the end.
                *offset += records as u64;
                let total = total_path.as_deref().map(|p| number(body, p)).transpose()?;
                let more = records > 0 && total.is_none_or(|total| *offset < total);
                more.then(|| {
                    let mut next = call.clone();
                    next.set(offset_param, offset.to_string());
                    next
                })
            }
            Pager::Page {
                page,
                base,
                param,
                total_path,
            } => {
                *page += 1;
                let total = total_path.as_deref().map(|p| number(body, p)).transpose()?;
                // `total` pages from `base`: the last is `base + total - 1`.
                let more = records > 0 && total.is_none_or(|pages| *page < *base + pages);
                more.then(|| {
                    let mut next = call.clone();
                    next.set(param, page.to_string());
                    next
                })
            }
            Pager::Cursor { path, param } => match at_path(body, path) {
                None | Some(Value::Null) => None,
                Some(Value::String(token)) if token.is_empty() => None,
                Some(Value::String(token)) => {
                    let mut next = call.clone();
                    next.set(param, token.clone());
                    Some(next)
                }
                Some(Value::Bool(false)) => None,
                Some(other) => {
                    let mut next = call.clone();
                    next.set(param, other.to_string());
                    Some(next)
                }
            },
        };
        if next.as_ref() == Some(call) {
            return Err(Error::internal(format!(
                "the next page is the page just read ({}): the paginator would loop",
                call.full_url()
            )));
        }
        Ok(next)
    }
}

impl Pager {
    /// Every page after the first, when the first answer says how many there are (an offset
    /// paginator with `total_path`, page numbers with a page count): they can all be asked for
    /// at once. An offset moves by what the first page held, so a server that caps its pages
    /// below `limit` is still read whole. `None` for paginators that learn the next page only
    /// from the one before.
    pub fn all_pages(
        &self,
        first: &Call,
        body: &Value,
        records: usize,
    ) -> Result<Option<Vec<Call>>> {
        let with = |param: &str, value: u64| {
            let mut call = first.clone();
            call.set(param, value.to_string());
            call
        };
        match self {
            Pager::Offset {
                offset,
                offset_param,
                total_path: Some(path),
                ..
            } => {
                let total = number(body, path)?;
                let step = records as u64;
                if step == 0 {
                    return Ok(Some(Vec::new()));
                }
                let starts = (1..)
                    .map(|i| offset + i * step)
                    .take_while(|at| *at < total);
                Ok(Some(starts.map(|at| with(offset_param, at)).collect()))
            }
            Pager::Page {
                page,
                base,
                param,
                total_path: Some(path),
            } => {
                let pages = number(body, path)?;
                if records == 0 {
                    return Ok(Some(Vec::new()));
                }
                Ok(Some(
                    (*page + 1..*base + pages).map(|p| with(param, p)).collect(),
                ))
            }
            _ => Ok(None),
        }
    }
}

/// A number in the body (a total of records or pages).
fn number(body: &Value, path: &str) -> Result<u64> {
    match at_path(body, path) {
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or_default()),
        Some(Value::String(s)) if s.parse::<u64>().is_ok() => Ok(s.parse().unwrap_or_default()),
        other => Err(Error::internal(format!(
            "total_path `{path}` is `{}` in the answer, not a count",
            other.map_or("missing".to_string(), Value::to_string)
        ))),
    }
}

/// The paginator an answer shows: a `Link` header with a next page, a next-page link in the
/// body, or none.
fn detect(response: &Response, body: &Value) -> Pager {
    if response.header("link").and_then(next_link).is_some() {
        return Pager::HeaderLink;
    }
    for path in NEXT_URL_PATHS {
        if let Some(Value::String(_) | Value::Null) = at_path(body, path) {
            return Pager::JsonLink(Some((*path).to_string()));
        }
    }
    Pager::Single
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(url: &str, link: Option<&str>) -> Response {
        Response {
            url: url.into(),
            status: 200,
            headers: link
                .map(|l| vec![("link".to_string(), l.to_string())])
                .unwrap_or_default(),
            body: Vec::new(),
        }
    }

    fn call(url: &str) -> Call {
        Call {
            method: "GET".into(),
            url: url.into(),
            query: Vec::new(),
            json: None,
        }
    }

    #[test]
    fn links_parse_and_resolve() {
        let header =
            r#"<https://api.x/repos?page=2>; rel="next", <https://api.x/repos?page=9>; rel="last""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.x/repos?page=2")
        );
        assert_eq!(next_link(r#"<https://api.x/r?page=1>; rel="prev""#), None);
        let from = "http://127.0.0.1:9/api/v1/items?page=1";
        assert_eq!(
            resolve_url(from, "/api/v1/items?page=2"),
            "http://127.0.0.1:9/api/v1/items?page=2"
        );
        assert_eq!(
            resolve_url(from, "?page=2"),
            "http://127.0.0.1:9/api/v1/items?page=2"
        );
        assert_eq!(
            resolve_url(from, "other?x=1"),
            "http://127.0.0.1:9/api/v1/other?x=1"
        );
        let mut c = call("http://h/a?x=1");
        c.set("q", "a b&c/é".into());
        assert_eq!(c.full_url(), "http://h/a?x=1&q=a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn each_paginator_finds_the_next_page_and_stops() {
        // Detected from a Link header, then from a body link.
        let mut pager = Pager::new(None);
        let first = call("http://h/repos");
        let next = pager
            .next(
                &first,
                &response("http://h/repos", Some(r#"</repos?page=2>; rel="next""#)),
                &json!([{}]),
                1,
            )
            .unwrap()
            .unwrap();
        assert_eq!(next.full_url(), "http://h/repos?page=2");
        assert!(matches!(pager, Pager::HeaderLink));
        assert_eq!(
            pager
                .next(
                    &next,
                    &response("http://h/repos?page=2", None),
                    &json!([]),
                    0
                )
                .unwrap(),
            None
        );

        let mut pager = Pager::new(None);
        let body = json!({"results": [{}], "links": {"next": "http://h/items?cursor=abc"}});
        let next = pager
            .next(&first, &response("http://h/items", None), &body, 1)
            .unwrap()
            .unwrap();
        assert_eq!(next.url, "http://h/items?cursor=abc");
        let body = json!({"results": [{}], "links": {"next": null}});
        assert_eq!(
            pager
                .next(&next, &response("http://h/items", None), &body, 1)
                .unwrap(),
            None
        );

        // Offset with a total, and without one (a short page ends it).
        let spec = PaginatorSpec::Offset {
            limit: 2,
            offset: 0,
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            total_path: Some("total".into()),
        };
        let mut pager = Pager::new(Some(&spec));
        let mut c = call("http://h/o");
        pager.first(&mut c);
        assert_eq!(c.full_url(), "http://h/o?offset=0&limit=2");
        let c = pager
            .next(&c, &response("http://h/o", None), &json!({"total": 3}), 2)
            .unwrap()
            .unwrap();
        assert_eq!(c.full_url(), "http://h/o?offset=2&limit=2");
        assert_eq!(
            pager
                .next(&c, &response("http://h/o", None), &json!({"total": 3}), 1)
                .unwrap(),
            None
        );
        // A server that gives fewer than `limit`: the offset grows by what came, and without a
        // total only an empty page ends it.
        let capped = PaginatorSpec::Offset {
            limit: 1000,
            offset: 0,
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            total_path: None,
        };
        let mut pager = Pager::new(Some(&capped));
        let mut c = call("http://h/o");
        pager.first(&mut c);
        let c = pager
            .next(&c, &response("http://h/o", None), &json!([]), 100)
            .unwrap()
            .unwrap();
        assert_eq!(c.full_url(), "http://h/o?offset=100&limit=1000");
        assert_eq!(
            pager
                .next(&c, &response("http://h/o", None), &json!([]), 0)
                .unwrap(),
            None
        );
        // Page numbers from 0 with a page count: 0, 1, 2 of 3.
        let from_zero = PaginatorSpec::PageNumber {
            page_param: "p".into(),
            base_page: 0,
            total_path: Some("pages".into()),
        };
        let mut pager = Pager::new(Some(&from_zero));
        let mut c = call("http://h/p");
        pager.first(&mut c);
        for _ in 0..2 {
            c = pager
                .next(&c, &response("http://h/p", None), &json!({"pages": 3}), 1)
                .unwrap()
                .unwrap();
        }
        assert_eq!(c.full_url(), "http://h/p?p=2");
        assert_eq!(
            pager
                .next(&c, &response("http://h/p", None), &json!({"pages": 3}), 1)
                .unwrap(),
            None
        );
        let err = Pager::new(Some(&spec))
            .next(&c, &response("http://h/o", None), &json!({}), 1)
            .unwrap_err();
        assert!(
            err.message.contains("total_path `total` is `missing`"),
            "{err}"
        );

        // With a total, every later page is known from the first answer.
        let pager = Pager::new(Some(&spec));
        let mut first = call("http://h/o");
        pager.first(&mut first);
        let later = pager
            .all_pages(&first, &json!({"total": 7}), 2)
            .unwrap()
            .unwrap();
        let urls: Vec<String> = later.iter().map(Call::full_url).collect();
        assert_eq!(
            urls,
            [
                "http://h/o?offset=2&limit=2",
                "http://h/o?offset=4&limit=2",
                "http://h/o?offset=6&limit=2"
            ]
        );
        let pager = Pager::new(Some(&from_zero));
        let mut first = call("http://h/p");
        pager.first(&mut first);
        let later = pager
            .all_pages(&first, &json!({"pages": 3}), 5)
            .unwrap()
            .unwrap();
        let urls: Vec<String> = later.iter().map(Call::full_url).collect();
        assert_eq!(urls, ["http://h/p?p=1", "http://h/p?p=2"]);
        assert!(
            Pager::new(None)
                .all_pages(&first, &json!({}), 5)
                .unwrap()
                .is_none()
        );

        // Page numbers until an empty page; a cursor until it is null.
        let spec = PaginatorSpec::PageNumber {
            page_param: "p".into(),
            base_page: 1,
            total_path: None,
        };
        let mut pager = Pager::new(Some(&spec));
        let mut c = call("http://h/p");
        pager.first(&mut c);
        let c = pager
            .next(&c, &response("http://h/p", None), &json!([1]), 1)
            .unwrap()
            .unwrap();
        assert_eq!(c.full_url(), "http://h/p?p=2");
        assert_eq!(
            pager
                .next(&c, &response("http://h/p", None), &json!([]), 0)
                .unwrap(),
            None
        );
        let spec = PaginatorSpec::Cursor {
            cursor_path: "meta.next".into(),
            cursor_param: "after".into(),
        };
        let mut pager = Pager::new(Some(&spec));
        let c = call("http://h/c");
        let c2 = pager
            .next(
                &c,
                &response("http://h/c", None),
                &json!({"meta": {"next": "t1"}}),
                5,
            )
            .unwrap()
            .unwrap();
        assert_eq!(c2.full_url(), "http://h/c?after=t1");
        let err = pager
            .next(
                &c2,
                &response("http://h/c", None),
                &json!({"meta": {"next": "t1"}}),
                5,
            )
            .unwrap_err();
        assert!(err.message.contains("would loop"), "{err}");
        assert_eq!(
            pager
                .next(
                    &c2,
                    &response("http://h/c", None),
                    &json!({"meta": {"next": null}}),
                    5
                )
                .unwrap(),
            None
        );
    }
}
