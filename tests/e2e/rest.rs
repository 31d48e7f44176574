//! `quarry/rest`, a sandboxed component, against recorded-style APIs served on loopback by
//! `tests/fixtures/rest-api/server.py`: every paginator and every kind of auth (the server
//! checks the credentials), parents and children, an incremental API that fails mid-pagination,
//! and a spec without the grant its host needs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{Workdir, listening_address, sqlite_query};

/// The fixture APIs, stopped when dropped.
struct Api {
    child: std::process::Child,
    address: String,
    state: tempfile::TempDir,
}

impl Api {
    fn start() -> Api {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rest-api/server.py");
        let state = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(state.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (Debian's) for the fixture API");
        let address = listening_address(&mut child);
        Api {
            child,
            address,
            state,
        }
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.state.path().join(name), text).expect("write the API's state");
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(self.state.path().join("requests.log")).unwrap_or_default()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SQLITE: &str = "---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  write_mode: overwrite
  spec: { connection_string: ./data/out.db }
  permissions: { files: { ./data: write } }
";

fn db(w: &Workdir) -> PathBuf {
    w.path().join("data/out.db")
}

#[test]
fn a_github_like_api_syncs_repos_issues_and_comments_over_link_headers() {
    let api = Api::start();
    let w = Workdir::new();
    let spec = format!(
        r#"kind: source
spec:
  name: github
  path: quarry/rest
  tables: ["*"]
  destinations: [lite]
  spec:
    client:
      base_url: http://{0}/
      auth: {{ type: bearer, token: "${{GITHUB_TOKEN}}" }}
      paginator: {{ type: header_link }}
    resource_defaults: {{ primary_key: id }}
    resources:
      - name: repos
        endpoint: orgs/acme/repos
      - name: issues
        primary_key: number
        endpoint:
          path: repos/{{owner}}/{{repo}}/issues
          params:
            owner: {{ type: resolve, resource: repos, field: owner.login }}
            repo: {{ type: resolve, resource: repos, field: name }}
      - name: comments
        endpoint:
          path: "{{comments_url}}"
          params:
            comments_url: {{ type: resolve, resource: issues, field: comments_url }}
  permissions: {{ network: ["{0}"] }}
{SQLITE}"#,
        api.address
    );
    w.write("spec.yml", &spec);
    let run = w.quarry_with(&["sync", "spec.yml"], &[("GITHUB_TOKEN", "ghp_e2e")]);
    assert_eq!(run.code, 0, "{run:?}");
    let db = db(&w);
    assert_eq!(
        sqlite_query(
            &db,
            "SELECT group_concat(name || ':' || stargazers_count || ':' || topics, ' ') FROM (SELECT * FROM repos ORDER BY id)"
        ),
        "rocket:7:[\"space\",\"fast\"] anvil:0:[]"
    );
    assert_eq!(
        sqlite_query(
            &db,
            "SELECT count(*) FROM issues i JOIN repos r ON i._cq_parent_id = r._cq_id WHERE r.name = 'rocket'"
        ),
        "3"
    );
    assert_eq!(
        sqlite_query(
            &db,
            "SELECT group_concat(n, ',') FROM (SELECT i.number || '=' || count(c.id) AS n FROM issues i LEFT JOIN comments c ON c._cq_parent_id = i._cq_id GROUP BY i.number ORDER BY i.number)"
        ),
        "1=1,2=2,3=3"
    );
    // A wrong token: the API's refusal, named with the resource, and exit 1.
    let run = w.quarry_with(&["sync", "spec.yml"], &[("GITHUB_TOKEN", "nope")]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("resource `repos`, page 1"), "{run:?}");
    assert!(run.stderr.contains("HTTP 401"), "{run:?}");
}

#[test]
fn cursor_json_link_and_page_number_apis_with_key_and_oauth2_auth() {
    let api = Api::start();
    let w = Workdir::new();
    let a = &api.address;
    let spec = format!(
        r#"kind: source
spec:
  name: events
  path: quarry/rest
  tables: ["*"]
  destinations: [lite]
  spec:
    client:
      base_url: http://{a}/v1
      auth: {{ type: api_key, name: api_key, api_key: k3y, location: query }}
    resources:
      - name: events
        primary_key: id
        endpoint:
          path: events
          data_selector: data
          paginator: {{ type: cursor, cursor_path: meta.next_cursor, cursor_param: after }}
  permissions: {{ network: ["{a}"] }}
---
kind: source
spec:
  name: crm
  path: quarry/rest
  tables: ["*"]
  destinations: [lite]
  spec:
    client:
      base_url: http://{a}/crm
      auth:
        type: oauth2_client_credentials
        access_token_url: http://{a}/oauth/token
        client_id: quarry
        client_secret: s3cret
    resources:
      - name: contacts
        primary_key: id
        endpoint: {{ path: contacts, paginator: {{ type: page_number }} }}
  permissions: {{ network: ["{a}"] }}
---
kind: source
spec:
  name: deals
  path: quarry/rest
  tables: ["*"]
  destinations: [lite]
  spec:
    client:
      base_url: http://{a}/crm
      auth: {{ type: api_key, name: X-Api-Key, api_key: d3al }}
    resources:
      - {{ name: deals, primary_key: id, endpoint: deals }}
  permissions: {{ network: ["{a}"] }}
{SQLITE}"#
    );
    w.write("spec.yml", &spec);
    // The events API refuses a page once with 429: the client waits as `Retry-After` says and
    // asks again.
    api.write("rate_limit", "true");
    let started = std::time::Instant::now();
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let db = db(&w);
    assert_eq!(
        sqlite_query(&db, "SELECT count(*), sum(id) FROM events"),
        "7\t28"
    );
    assert_eq!(
        sqlite_query(
            &db,
            "SELECT group_concat(email, ' ') FROM (SELECT * FROM contacts ORDER BY id)"
        ),
        "c1@example.com c2@example.com c3@example.com c4@example.com c5@example.com"
    );
    assert_eq!(
        sqlite_query(&db, "SELECT count(*), sum(amount) FROM deals"),
        "5\t1507.5"
    );
    let requests = api.requests();
    // The deals API's pages were found by the link in its body (detected), the events' by the
    // cursor, the contacts' by page number until an empty page.
    assert!(requests.contains("GET /crm/deals?after=3"), "{requests}");
    assert!(
        requests.contains("GET /v1/events?after=tok6&api_key=k3y"),
        "{requests}"
    );
    assert_eq!(
        requests
            .matches("GET /v1/events?after=tok3&api_key=k3y\n")
            .count(),
        2,
        "{requests}"
    );
    assert!(requests.contains("GET /crm/contacts?page=4"), "{requests}");
    assert!(requests.contains("POST /oauth/token"), "{requests}");
}

fn tickets(ids: &[(u32, u32)]) -> String {
    let tickets: Vec<String> = ids
        .iter()
        .map(|(id, minute)| {
            format!(r#"{{"id": {id}, "subject": "ticket {id}", "updated_at": "2026-03-01T10:{minute:02}:00Z"}}"#)
        })
        .collect();
    format!("[{}]", tickets.join(", "))
}

#[test]
fn an_incremental_api_that_fails_mid_pagination_loses_nothing_on_the_next_run() {
    let api = Api::start();
    let w = Workdir::new();
    let a = &api.address;
    let spec = format!(
        r#"kind: source
spec:
  name: desk
  path: quarry/rest
  tables: ["*"]
  destinations: [lite]
  backend_options: {{ table_name: cq_state, connection: "@@plugins.lite.connection" }}
  spec:
    client:
      base_url: http://{a}/desk
      auth: {{ type: http_basic, username: desk, password: pa55 }}
      retries: 1
    resources:
      - name: tickets
        primary_key: id
        endpoint:
          path: tickets
          data_selector: tickets
          paginator: {{ type: offset, limit: 2, total_path: total }}
          incremental: {{ param: updated_since, cursor_path: updated_at, initial_value: "2026-03-01T10:00:00Z" }}
  permissions: {{ network: ["{a}"] }}
{SQLITE}"#
    );
    w.write("spec.yml", &spec);
    api.write("tickets.json", &tickets(&[(1, 1), (2, 2), (3, 3)]));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let db = db(&w);
    let subjects = || {
        sqlite_query(
            &db,
            "SELECT group_concat(id || '@' || updated_at, ' ') FROM (SELECT * FROM tickets ORDER BY id)",
        )
    };
    assert_eq!(
        subjects(),
        "1@2026-03-01 10:01:00.000000 2@2026-03-01 10:02:00.000000 3@2026-03-01 10:03:00.000000"
    );
    let show = w.quarry(&["state", "show", "desk", "spec.yml"]);
    assert_eq!(
        show.stdout, "tickets.updated_at\t\"2026-03-01T10:03:00Z\"\n",
        "{show:?}"
    );

    // Ticket 2 changes and 4 and 5 are new; the API fails on the second page.
    api.write(
        "tickets.json",
        &tickets(&[(1, 1), (2, 10), (3, 3), (4, 11), (5, 12)]),
    );
    api.write("fail_offset", "2");
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("resource `tickets`, page 2"), "{run:?}");
    assert!(run.stderr.contains("HTTP 500"), "{run:?}");
    // The first page's rows were kept; the cursor did not move.
    assert!(
        subjects().contains("2@2026-03-01 10:10:00"),
        "{}",
        subjects()
    );
    let show = w.quarry(&["state", "show", "desk", "spec.yml"]);
    assert_eq!(
        show.stdout, "tickets.updated_at\t\"2026-03-01T10:03:00Z\"\n",
        "{show:?}"
    );

    std::fs::remove_file(api.state.path().join("fail_offset")).unwrap();
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        subjects(),
        "1@2026-03-01 10:01:00.000000 2@2026-03-01 10:10:00.000000 3@2026-03-01 10:03:00.000000 \
         4@2026-03-01 10:11:00.000000 5@2026-03-01 10:12:00.000000"
    );
    let show = w.quarry(&["state", "show", "desk", "spec.yml"]);
    assert_eq!(
        show.stdout, "tickets.updated_at\t\"2026-03-01T10:12:00Z\"\n",
        "{show:?}"
    );
    assert!(
        api.requests()
            .contains("updated_since=2026-03-01T10%3A03%3A00Z"),
        "{}",
        api.requests()
    );
}

#[test]
fn without_a_grant_for_its_host_the_denial_names_the_grant_to_add() {
    let api = Api::start();
    let w = Workdir::new();
    let spec = format!(
        r#"kind: source
spec:
  name: events
  path: quarry/rest
  tables: ["*"]
  destinations: [lite]
  spec:
    client: {{ base_url: "http://{}/v1", auth: {{ type: api_key, name: api_key, api_key: k3y, location: query }} }}
    resources:
      - name: events
        endpoint:
          path: events
          data_selector: data
          paginator: {{ type: cursor, cursor_path: meta.next_cursor, cursor_param: after }}
{SQLITE}"#,
        api.address
    );
    w.write("spec.yml", &spec);
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains(&api.address) && run.stderr.contains("network"),
        "the refusal names the grant to add: {run:?}"
    );
    assert_eq!(api.requests(), "", "nothing reached the API");
    // What the source declares: its base URL's host, which --grant-declared approves.
    let inspect = w.quarry(&["plugin", "inspect", "quarry/rest"]);
    assert!(
        inspect.stdout.contains("spec:client.base_url"),
        "{inspect:?}"
    );
    let init = w.quarry(&[
        "init",
        "--source",
        "quarry/rest",
        "--destination",
        "quarry/sqlite",
        "--spec-path",
        "-",
    ]);
    assert_eq!(init.code, 0, "{init:?}");
    assert!(
        init.stdout
            .contains("# and the host of client.base_url, client.auth.access_token_url"),
        "{init:?}"
    );
    let run = w.quarry(&["sync", "spec.yml", "--grant-declared"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(sqlite_query(&db(&w), "SELECT count(*) FROM events"), "7");
}
