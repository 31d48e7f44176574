//! The source against fake APIs (a transport answering as a recorded API would): every
//! paginator, every kind of auth, parents and children, incremental cursors, and an API that
//! fails between pages.

use std::cell::RefCell;
use std::rc::Rc;

use quarry_sdk::http::{Request, Response};
use quarry_sdk::{Message, Result, Source, SyncOptions, run_sync};
use serde_json::{Value, json};

use super::*;

type Handler = dyn Fn(&Request) -> (u16, Vec<(String, String)>, Value);

/// A fake API: answers with `handler`, and keeps every request it was sent.
#[derive(Clone)]
struct Fake {
    handler: Rc<Handler>,
    log: Rc<RefCell<Vec<Request>>>,
}

impl Fake {
    fn new(handler: impl Fn(&Request) -> (u16, Vec<(String, String)>, Value) + 'static) -> Fake {
        Fake {
            handler: Rc::new(handler),
            log: Rc::default(),
        }
    }

    fn urls(&self) -> Vec<String> {
        self.log.borrow().iter().map(|r| r.url.clone()).collect()
    }
}

impl Transport for Fake {
    fn send_all(&self, requests: &[Request], _: usize) -> Vec<Result<Response>> {
        requests
            .iter()
            .map(|r| {
                self.log.borrow_mut().push(r.clone());
                let (status, headers, body) = (self.handler)(r);
                Ok(Response {
                    url: r.url.clone(),
                    status,
                    headers,
                    body: body.to_string().into_bytes(),
                })
            })
            .collect()
    }
}

fn source(spec: Value, fake: &Fake) -> Rest {
    let spec: Spec = serde_json::from_value(spec).unwrap();
    Rest::with_transport(spec, Box::new(fake.clone())).unwrap()
}

fn ok(body: Value) -> (u16, Vec<(String, String)>, Value) {
    (200, Vec::new(), body)
}

fn header(r: &Request, name: &str) -> Option<String> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The value of query parameter `name` in `url`.
fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.replace("%3A", ":").replace("%2B", "+"))
    })
}

fn path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = &rest[rest.find('/').unwrap_or(rest.len())..];
    path.split('?').next().unwrap_or("")
}

fn rows(messages: &[Message], table: &str, column: &str) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Insert(b) if quarry_sdk::table_name(b.schema_ref()) == table => Some(b),
            _ => None,
        })
        .flat_map(|b| {
            let array = b.column_by_name(column).expect("the column");
            let format =
                arrow_cast::display::ArrayFormatter::try_new(array.as_ref(), &Default::default())
                    .unwrap();
            (0..b.num_rows())
                .map(|i| format.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn states(messages: &[Message]) -> Vec<(String, String)> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::State { key, value } => Some((key.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

/// A GitHub-like API: repos of an org (two pages by `Link` header), each repo's issues (pages
/// by `Link` header), each issue's comments at the URL the issue names. Bearer token checked.
fn github() -> Fake {
    Fake::new(|r| {
        if header(r, "authorization").as_deref() != Some("Bearer ghp_secret") {
            return (401, Vec::new(), json!({"message": "Bad credentials"}));
        }
        let link = |next: &str| vec![("link".into(), format!("<{next}>; rel=\"next\""))];
        match (path(&r.url), param(&r.url, "page").as_deref()) {
            ("/orgs/acme/repos", None) => (
                200,
                link("http://api.test/orgs/acme/repos?page=2"),
                json!([{"id": 1, "name": "rocket", "owner": {"login": "acme"}, "private": false,
                        "topics": ["space"], "created_at": "2020-01-01T00:00:00Z"}]),
            ),
            ("/orgs/acme/repos", Some("2")) => ok(json!([
                {"id": 2, "name": "anvil", "owner": {"login": "acme"}, "private": true,
                 "topics": [], "created_at": "2021-06-01T12:30:00Z"}
            ])),
            ("/repos/acme/rocket/issues", None) => (
                200,
                link("http://api.test/repos/acme/rocket/issues?page=2"),
                json!([{"number": 10, "title": "Boom", "comments_url": "http://api.test/repos/acme/rocket/issues/10/comments"}]),
            ),
            ("/repos/acme/rocket/issues", Some("2")) => ok(json!([
                {"number": 11, "title": "Fizzle", "comments_url": "http://api.test/repos/acme/rocket/issues/11/comments"}
            ])),
            ("/repos/acme/anvil/issues", None) => ok(json!([])),
            ("/repos/acme/rocket/issues/10/comments", None) => {
                ok(json!([{"id": 100, "body": "first"}, {"id": 101, "body": "second"}]))
            }
            ("/repos/acme/rocket/issues/11/comments", None) => ok(json!([])),
            _ => (404, Vec::new(), json!({"message": "Not Found"})),
        }
    })
}

fn github_spec(token: &str) -> Value {
    json!({
        "client": {"base_url": "http://api.test/", "auth": {"type": "bearer", "token": token},
                   "paginator": {"type": "header_link"}},
        "resource_defaults": {"primary_key": "id"},
        "resources": [
            {"name": "repos", "endpoint": "orgs/acme/repos"},
            {"name": "issues", "primary_key": "number", "endpoint": {
                "path": "/repos/{owner}/{repo}/issues",
                "params": {"owner": {"type": "resolve", "resource": "repos", "field": "owner.login"},
                           "repo": {"type": "resolve", "resource": "repos", "field": "name"},
                           "state": "all"}}},
            {"name": "comments", "endpoint": {
                "path": "{comments_url}",
                "params": {"comments_url": {"type": "resolve", "resource": "issues", "field": "comments_url"}}}}
        ]
    })
}

#[test]
fn a_github_like_api_syncs_parents_children_and_grandchildren_over_link_headers() {
    let fake = github();
    let mut rest = source(github_spec("ghp_secret"), &fake);
    let tables = rest.discover().unwrap();
    let names: Vec<(&str, Option<&str>)> = tables
        .iter()
        .map(|t| (t.name.as_str(), t.parent.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("repos", None),
            ("issues", Some("repos")),
            ("comments", Some("issues"))
        ]
    );
    let repos = &tables[0];
    let described: Vec<String> = repos
        .columns
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c.name,
                c.extension
                    .map_or(c.data_type.to_string(), |e| e.name().to_string())
            )
        })
        .collect();
    assert_eq!(
        described.join(" "),
        "created_at:Timestamp(µs, \"UTC\") id:Int64 name:Utf8 owner:json private:Boolean topics:List(Utf8)"
    );
    assert!(repos.columns[1].primary_key);

    let mut messages = Vec::new();
    run_sync(&mut rest, &SyncOptions::default(), &mut messages).unwrap();
    assert_eq!(rows(&messages, "repos", "name"), ["rocket", "anvil"]);
    assert_eq!(rows(&messages, "issues", "title"), ["Boom", "Fizzle"]);
    assert_eq!(rows(&messages, "comments", "body"), ["first", "second"]);
    // Children carry their parent row's `_cq_id`.
    let id_of = |table: &str, column: &str, value: &str| -> String {
        let batch = messages
            .iter()
            .find_map(|m| match m {
                Message::Insert(b)
                    if quarry_sdk::table_name(b.schema_ref()) == table
                        && rows(std::slice::from_ref(m), table, column)
                            .contains(&value.to_string()) =>
                {
                    Some(b.clone())
                }
                _ => None,
            })
            .unwrap();
        let i = rows(&[Message::Insert(batch.clone())], table, column)
            .iter()
            .position(|v| v == value)
            .unwrap();
        arrow_cast::display::ArrayFormatter::try_new(
            batch.column_by_name("_cq_parent_id").unwrap().as_ref(),
            &Default::default(),
        )
        .unwrap()
        .value(i)
        .to_string()
    };
    let cq_id = |table: &str, column: &str, value: &str| -> String {
        for m in &messages {
            if let Message::Insert(b) = m
                && quarry_sdk::table_name(b.schema_ref()) == table
            {
                let values = rows(std::slice::from_ref(m), table, column);
                if let Some(i) = values.iter().position(|v| v == value) {
                    let f = arrow_cast::display::ArrayFormatter::try_new(
                        b.column_by_name("_cq_id").unwrap().as_ref(),
                        &Default::default(),
                    )
                    .unwrap();
                    return f.value(i).to_string();
                }
            }
        }
        panic!("no {table}.{column} = {value}");
    };
    assert_eq!(
        id_of("issues", "title", "Fizzle"),
        cq_id("repos", "name", "rocket")
    );
    assert_eq!(
        id_of("comments", "body", "second"),
        cq_id("issues", "title", "Boom")
    );
    let urls = fake.urls();
    assert!(
        urls.contains(&"http://api.test/repos/acme/anvil/issues?state=all".to_string()),
        "{urls:?}"
    );

    // A wrong token: the API's refusal, named with the resource.
    let fake = github();
    let err = source(github_spec("wrong"), &fake).discover().unwrap_err();
    assert_eq!(err.kind, quarry_sdk::ErrorKind::Unauthorized);
    assert!(err.message.contains("resource `repos`, page 1"), "{err}");
    assert!(
        err.message
            .contains("HTTP 401: {\"message\":\"Bad credentials\"}"),
        "{err}"
    );
}

/// An API of events paginated by a cursor token in the body, keyed by `api_key` in the query.
#[test]
fn a_cursor_paginated_api_with_a_key_in_the_query() {
    let fake = Fake::new(|r| {
        if param(&r.url, "api_key").as_deref() != Some("k3y") {
            return (403, Vec::new(), json!({"error": "forbidden"}));
        }
        let after: u64 =
            param(&r.url, "after").map_or(0, |a| a.trim_start_matches("tok").parse().unwrap());
        let events: Vec<Value> = (after + 1..=(after + 3).min(7))
            .map(|i| json!({"id": i, "kind": "click", "value": i as f64 / 2.0}))
            .collect();
        let next = if after + 3 < 7 {
            json!(format!("tok{}", after + 3))
        } else {
            Value::Null
        };
        ok(json!({"data": events, "meta": {"next_cursor": next}}))
    });
    let spec = json!({
        "client": {"base_url": "http://events.test/v1",
                   "auth": {"type": "api_key", "name": "api_key", "api_key": "k3y", "location": "query"}},
        "resources": [{"name": "events", "primary_key": "id", "endpoint": {
            "path": "events", "data_selector": "data",
            "paginator": {"type": "cursor", "cursor_path": "meta.next_cursor", "cursor_param": "after"}}}]
    });
    let mut rest = source(spec, &fake);
    let mut messages = Vec::new();
    run_sync(&mut rest, &SyncOptions::default(), &mut messages).unwrap();
    assert_eq!(
        rows(&messages, "events", "id"),
        ["1", "2", "3", "4", "5", "6", "7"]
    );
    assert_eq!(
        fake.urls()[1..],
        [
            "http://events.test/v1/events?api_key=k3y",
            "http://events.test/v1/events?after=tok3&api_key=k3y",
            "http://events.test/v1/events?after=tok6&api_key=k3y",
        ]
    );
}

/// An offset-paginated API filtered by `updated_since`, behind HTTP basic auth; `fail_at`
/// makes the offset that answers 500.
fn tickets(records: Rc<RefCell<Vec<Value>>>, fail_at: Rc<RefCell<Option<u64>>>) -> Fake {
    Fake::new(move |r| {
        if header(r, "authorization").as_deref() != Some("Basic dXNlcjpwYXNz") {
            return (401, Vec::new(), json!({"error": "who are you"}));
        }
        let offset: u64 = param(&r.url, "offset").unwrap().parse().unwrap();
        let limit: usize = param(&r.url, "limit").unwrap().parse().unwrap();
        if *fail_at.borrow() == Some(offset) {
            return (500, Vec::new(), json!({"error": "database on fire"}));
        }
        let since = param(&r.url, "updated_since");
        let matching: Vec<Value> = records
            .borrow()
            .iter()
            .filter(|t| {
                since
                    .as_deref()
                    .is_none_or(|s| t["updated_at"].as_str().unwrap() > s)
            })
            .cloned()
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset as usize)
            .take(limit)
            .cloned()
            .collect();
        ok(json!({"tickets": page, "total": matching.len()}))
    })
}

fn ticket(id: u64, minute: u64) -> Value {
    json!({"id": id, "subject": format!("ticket {id}"), "updated_at": format!("2026-03-01T10:{minute:02}:00Z")})
}

#[test]
fn incremental_offset_pages_resume_from_the_last_saved_cursor_after_a_failure() {
    let records = Rc::new(RefCell::new(
        (1..=5).map(|i| ticket(i, i)).collect::<Vec<_>>(),
    ));
    let fail_at = Rc::new(RefCell::new(None));
    let fake = tickets(records.clone(), fail_at.clone());
    let spec = json!({
        "client": {"base_url": "http://desk.test", "auth": {"type": "http_basic", "username": "user", "password": "pass"}},
        "resources": [{"name": "tickets", "primary_key": "id", "endpoint": {
            "path": "/api/tickets",
            "paginator": {"type": "offset", "limit": 2, "total_path": "total"},
            "incremental": {"param": "updated_since", "cursor_path": "updated_at",
                            "initial_value": "2026-03-01T10:01:00Z"}}}]
    });
    let mut rest = source(spec.clone(), &fake);
    let mut messages = Vec::new();
    run_sync(&mut rest, &SyncOptions::default(), &mut messages).unwrap();
    // The initial value leaves out ticket 1.
    assert_eq!(rows(&messages, "tickets", "id"), ["2", "3", "4", "5"]);
    assert_eq!(
        states(&messages),
        [(
            "tickets.updated_at".to_string(),
            "\"2026-03-01T10:05:00Z\"".to_string()
        )]
    );

    // Three changes, and the API fails on the second page: the first page's rows are sent, the
    // cursor stays, and the error names the resource, the page and the answer.
    records
        .borrow_mut()
        .extend([ticket(6, 10), ticket(2, 11), ticket(7, 12)]);
    *fail_at.borrow_mut() = Some(2);
    let before = messages.len();
    let err = run_sync(&mut rest, &SyncOptions::default(), &mut messages).unwrap_err();
    assert!(err.message.contains("resource `tickets`, page 2"), "{err}");
    assert!(
        err.message
            .contains("HTTP 500: {\"error\":\"database on fire\"}"),
        "{err}"
    );
    assert_eq!(rows(&messages[before..], "tickets", "id"), ["6", "2"]);
    assert!(states(&messages[before..]).is_empty());

    // The next run asks from the saved cursor again: nothing is lost.
    *fail_at.borrow_mut() = None;
    let before = messages.len();
    run_sync(&mut rest, &SyncOptions::default(), &mut messages).unwrap();
    assert_eq!(rows(&messages[before..], "tickets", "id"), ["6", "2", "7"]);
    assert_eq!(
        states(&messages[before..]),
        [(
            "tickets.updated_at".to_string(),
            "\"2026-03-01T10:12:00Z\"".to_string()
        )]
    );
    assert!(
        fake.urls()
            .last()
            .unwrap()
            .contains("updated_since=2026-03-01T10%3A05%3A00Z"),
        "{:?}",
        fake.urls()
    );
}

/// OAuth 2 client credentials: the token is asked for once, sent as a bearer token, and asked
/// for again when the API refuses it.
#[test]
fn oauth2_tokens_are_fetched_sent_and_renewed() {
    let issued = Rc::new(RefCell::new(0));
    let counter = issued.clone();
    let fake = Fake::new(move |r| {
        if path(&r.url) == "/oauth/token" {
            let form = String::from_utf8(r.body.clone().unwrap_or_default()).unwrap();
            assert_eq!(r.method, "POST");
            if !form.contains("client_secret=s%3Dcret")
                || !form.contains("grant_type=client_credentials")
            {
                return (401, Vec::new(), json!({"error": "invalid_client"}));
            }
            *counter.borrow_mut() += 1;
            let n = *counter.borrow();
            return ok(json!({"access_token": format!("t{n}"), "expires_in": 3600}));
        }
        // The first token is revoked after the first page.
        let token = header(r, "authorization").unwrap_or_default();
        let page = param(&r.url, "page").unwrap_or_default();
        if token == "Bearer t1" && page == "2" || !token.starts_with("Bearer t") {
            return (401, Vec::new(), json!({"error": "expired"}));
        }
        let items: Vec<Value> = match page.as_str() {
            "1" => vec![json!({"id": 1}), json!({"id": 2})],
            "2" => vec![json!({"id": 3})],
            _ => vec![],
        };
        ok(json!(items))
    });
    let spec = json!({
        "client": {"base_url": "http://crm.test", "auth": {"type": "oauth2_client_credentials",
            "access_token_url": "http://crm.test/oauth/token", "client_id": "quarry", "client_secret": "s=cret"},
            "paginator": {"type": "page_number"}},
        "resources": [{"name": "contacts", "endpoint": "/contacts", "columns": {"id": "Int64"}}]
    });
    let mut rest = source(spec.clone(), &fake);
    let mut messages = Vec::new();
    run_sync(&mut rest, &SyncOptions::default(), &mut messages).unwrap();
    assert_eq!(rows(&messages, "contacts", "id"), ["1", "2", "3"]);
    assert_eq!(*issued.borrow(), 2);

    let bad = json!({
        "client": {"base_url": "http://crm.test", "auth": {"type": "oauth2_client_credentials",
            "access_token_url": "http://crm.test/oauth/token", "client_id": "quarry", "client_secret": "nope"}},
        "resources": [{"name": "contacts", "endpoint": "/contacts"}]
    });
    let err = source(bad, &fake).discover().unwrap_err();
    assert!(
        err.message
            .contains("OAuth 2 token request to http://crm.test/oauth/token: HTTP 401"),
        "{err}"
    );
}

#[test]
fn specs_that_cannot_work_are_refused_naming_the_field() {
    let fake = Fake::new(|_| ok(json!([])));
    let refuse = |spec: Value| {
        let spec: Spec = serde_json::from_value(spec).unwrap();
        Rest::with_transport(spec, Box::new(fake.clone()))
            .err()
            .unwrap()
            .message
    };
    assert!(refuse(json!({"client": {"base_url": "api.test"}, "resources": [{"name": "a", "endpoint": "x"}]}))
        .contains("client.base_url `api.test` must start with https://"));
    assert!(refuse(json!({"client": {"base_url": "http://a"}, "resources": [
        {"name": "b", "endpoint": {"path": "b/{id}", "params": {"id": {"type": "resolve", "resource": "a", "field": "id"}}}},
        {"name": "a", "endpoint": "a"}]}))
        .contains("resolves from resource `a`, which is not listed before it"));
    assert!(
        refuse(json!({"client": {"base_url": "http://a"}, "resources": [
        {"name": "a", "endpoint": "a", "write_disposition": "merge"}]}))
        .contains("`merge` needs a primary_key")
    );
    // A placeholder with no parameter, and a first page with nothing to infer from.
    let mut rest = source(
        json!({"client": {"base_url": "http://a"}, "resources": [{"name": "a", "endpoint": "a/{id}"}]}),
        &fake,
    );
    assert!(
        rest.discover()
            .unwrap_err()
            .message
            .contains("path placeholder `{id}` is no parameter")
    );
    let mut rest = source(
        json!({"client": {"base_url": "http://a"}, "resources": [{"name": "a", "endpoint": "a"}]}),
        &fake,
    );
    assert!(
        rest.discover()
            .unwrap_err()
            .message
            .contains("declare them under `columns`")
    );
    assert!(rest.tables().is_empty());
}
