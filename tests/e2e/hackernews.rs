//! The `hackernews` source over the sandbox's outbound HTTP, against recorded API responses served
//! by `quarry-fixture-http` (the network beyond loopback is closed): CloudQuery's tutorial spec
//! into DuckDB, twice, with the server's request log proving the second run fetched only the new
//! items; a run killed with SIGKILL and run again; and requests the grants do not cover.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::{FileServer, Workdir};
use crate::support::{
    Schema, duckdb_query, psql, sqlite_query as query, sync_killed_after_a_checkpoint,
};

/// The recorded items: 39600001..=39600300, the first 40 older than the tutorial's start_time.
const FIRST_ID: u64 = 39_600_001;
const LAST_ID: u64 = 39_600_300;
const START_TIME: &str = "2024-03-07T11:00:00Z";
const START_SECONDS: i64 = 1_709_809_200;

fn recorded() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hackernews/v0")
}

/// The ids of recorded items (not `null`) in `ids` posted at or after the start time.
fn items_in(ids: std::ops::RangeInclusive<u64>) -> BTreeSet<u64> {
    ids.filter(|id| {
        let Ok(text) = std::fs::read_to_string(recorded().join(format!("item/{id}.json"))) else {
            return false;
        };
        let item: serde_json::Value = serde_json::from_str(&text).expect("recorded item is JSON");
        item["time"].as_i64().is_some_and(|t| t >= START_SECONDS)
    })
    .collect()
}

/// The fixture server with the recorded Hacker News API under `v0/`.
struct Server(FileServer);

impl std::ops::Deref for Server {
    type Target = FileServer;
    fn deref(&self) -> &FileServer {
        &self.0
    }
}

impl Server {
    /// Serves the recorded items up to `last`, answering after `latency_ms`.
    fn start(last: u64, latency_ms: u64) -> Self {
        let server = Server(FileServer::start(latency_ms));
        std::fs::create_dir_all(server.dir.path().join("v0/item")).expect("mkdir");
        server.publish(FIRST_ID, last);
        server
    }

    /// Adds the recorded items `from..=to` and moves `maxitem` to `to`: new posts.
    fn publish(&self, from: u64, to: u64) {
        for id in from..=to {
            let name = format!("item/{id}.json");
            if let Ok(text) = std::fs::read(recorded().join(&name)) {
                std::fs::write(self.dir.path().join("v0").join(&name), text).expect("copy item");
            }
        }
        std::fs::write(self.dir.path().join("v0/maxitem.json"), to.to_string()).expect("maxitem");
    }

    /// The item ids requested since the last call, and empties the log.
    fn take_requested_items(&self) -> Vec<u64> {
        let items = requested_items(&self.0);
        std::fs::write(&self.log, "").expect("truncate the log");
        items
    }
}

/// CloudQuery's tutorial spec, with `base_url` pointing at the fixture server and the grant.
fn tutorial(server: &Server) -> String {
    format!(
        r#"kind: source
spec:
  name: hackernews
  path: quarry/hackernews
  tables: ["*"]
  destinations: ["duckdb"]
  backend_options:
    table_name: "cq_state"
    connection: "@@plugins.duckdb.connection"
  spec:
    item_concurrency: 100
    start_time: {START_TIME}
    base_url: http://{address}
  permissions:
    network: ["{address}"]
---
kind: destination
spec:
  name: duckdb
  path: quarry/duckdb
  write_mode: "overwrite-delete-stale"
  spec:
    connection_string: hn.db
"#,
        address = server.address
    )
}

/// CloudQuery's tutorial spec exactly as published (`registry: cloudquery`, CloudQuery's
/// version numbers, no `permissions`), plus `base_url` pointing at the fixture server.
fn published_tutorial(server: &Server) -> String {
    format!(
        r#"kind: source
spec:
  name: hackernews
  path: cloudquery/hackernews
  registry: cloudquery
  version: v3.0.24
  tables: ["*"]
  backend_options:
    table_name: "cq_state"
    connection: "@@plugins.duckdb.connection"
  destinations:
    - "duckdb"
  spec:
    item_concurrency: 100
    start_time: {START_TIME}
    base_url: http://{address}
---
kind: destination
spec:
  name: duckdb
  path: cloudquery/duckdb
  version: v5.4.2
  write_mode: "overwrite-delete-stale"
  spec:
    connection_string: hn.db
"#,
        address = server.address
    )
}

/// Every id in the DuckDB table, duplicates included, in order.
fn duckdb_ids(w: &Workdir) -> Vec<u64> {
    ids(&duckdb_query(
        &w.path().join("hn.db"),
        "SELECT id FROM hackernews_items ORDER BY id",
    ))
}

/// One id per line, as the query helpers print them.
fn ids(text: &str) -> Vec<u64> {
    text.lines().map(|l| l.parse().expect("an id")).collect()
}

#[test]
fn the_tutorial_spec_syncs_into_duckdb_and_a_second_run_fetches_only_new_items() {
    let server = Server::start(39_600_200, 0);
    let w = Workdir::new();
    w.write("spec.yml", &tutorial(&server));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let first = items_in(FIRST_ID..=39_600_200);
    assert_eq!(duckdb_ids(&w), Vec::from_iter(first.iter().copied()));
    // The first run searched for the start time, then fetched from the first item after it.
    let requested = server.take_requested_items();
    assert!(requested.contains(&first.first().copied().unwrap_or_default()));

    server.publish(39_600_201, LAST_ID);
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let requested: BTreeSet<u64> = server.take_requested_items().into_iter().collect();
    assert_eq!(
        requested,
        (39_600_201..=LAST_ID).collect::<BTreeSet<u64>>(),
        "the second run fetches exactly the items after the cursor"
    );
    let all = items_in(FIRST_ID..=LAST_ID);
    assert_eq!(
        duckdb_ids(&w),
        Vec::from_iter(all),
        "every item exactly once"
    );
    let show = w.quarry(&["state", "show", "hackernews", "spec.yml"]);
    assert_eq!(
        show.stdout,
        format!("hackernews_items\t{LAST_ID}\n"),
        "{show:?}"
    );
}

/// The published spec runs unchanged: the Hub paths run as Quarry's own plugins (said once),
/// CloudQuery's versions are accepted, and the one grant the source needs comes from approving
/// what it declares (`--grant-declared`); without that the default stays deny, and the refusal
/// names the grant. `--log-console` (the tutorial's own command line) is accepted.
#[test]
fn cloudquerys_published_tutorial_spec_runs_with_the_declared_grants_approved() {
    let server = Server::start(LAST_ID, 0);
    let w = Workdir::new();
    w.write("spec.yml", &published_tutorial(&server));
    let denied = w.quarry(&["sync", "spec.yml", "--log-console"]);
    assert_ne!(denied.code, 0, "{denied:?}");
    assert!(
        denied.stderr.contains(&server.address) && denied.stderr.contains("network"),
        "the refusal names the grant to add: {denied:?}"
    );
    let run = w.quarry(&["sync", "spec.yml", "--log-console", "--grant-declared"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("`cloudquery/hackernews` v3.0.24 runs as Quarry's own `quarry/hackernews`"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains(&format!(
            "granting `cloudquery/hackernews` what it declares it needs: network \
             `hacker-news.firebaseio.com`, network `{}`",
            server.address
        )),
        "{run:?}"
    );
    assert_eq!(duckdb_ids(&w), Vec::from_iter(items_in(FIRST_ID..=LAST_ID)));
}

/// Killed with SIGKILL once a cursor was saved, then run again: the second run resumes after
/// the saved cursor and no item is missing. In append mode the items between the cursor and the
/// kill may arrive twice; nothing else does.
#[test]
fn a_sync_killed_mid_run_resumes_after_its_cursor_and_misses_no_item() {
    // 5 at a time, 50 ms each: 100 items per second, so the run lasts about 3 s.
    let server = Server::start(LAST_ID, 50);
    let schema = Schema::new();
    let s = &schema.0;
    let w = Workdir::new();
    w.write(
        "spec.yml",
        &format!(
            r#"kind: source
spec:
  name: hackernews
  path: quarry/hackernews
  tables: ['*']
  destinations: [pg]
  backend_options:
    table_name: cq_state
    connection: "@@plugins.pg.connection"
  spec:
    item_concurrency: 5
    start_time: {START_TIME}
    base_url: http://{a}
  permissions: {{ network: ['{a}'] }}
---
kind: destination
spec:
  name: pg
  path: quarry/postgresql
  write_mode: append
  spec:
    connection_string: postgres://postgres@127.0.0.1:5432/test
    schema: {s}
  permissions: {{ network: ['127.0.0.1:5432'] }}
"#,
            a = server.address
        ),
    );
    let saved = sync_killed_after_a_checkpoint(&w, s);
    assert!(saved < LAST_ID, "killed mid-sync, at cursor {saved}");
    server.take_requested_items();

    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let requested: BTreeSet<u64> = server.take_requested_items().into_iter().collect();
    assert_eq!(
        requested,
        (saved + 1..=LAST_ID).collect::<BTreeSet<u64>>(),
        "the second run resumed after the saved cursor"
    );
    let all = items_in(FIRST_ID..=LAST_ID);
    let stored = ids(&psql(&format!(
        "select distinct id from {s}.hackernews_items order by id"
    )));
    assert_eq!(stored, Vec::from_iter(all), "no item missing, none extra");
    // Duplicates only of items past the saved cursor: those sent before the kill.
    let duplicated = ids(&psql(&format!(
        "select id from {s}.hackernews_items group by id having count(*) > 1"
    )));
    assert!(
        duplicated.iter().all(|id| *id > saved),
        "duplicates {duplicated:?} before cursor {saved}"
    );
}

/// One run, four sources: one granted the server's address, one whose host is not granted, one
/// granted a name that resolves to 127.0.0.1, and one granted the address whose first answer
/// redirects to a name it was not granted. The first syncs; the others fail with the URL and the
/// grant that would allow it.
#[test]
fn requests_outside_the_grants_are_denied_while_granted_ones_succeed() {
    let server = Server::start(LAST_ID, 0);
    let (address, port) = (
        server.address.clone(),
        server.address.rsplit_once(':').expect("port").1.to_string(),
    );
    let source = |name: &str, base: &str, grant: &str| {
        format!(
            r#"kind: source
spec:
  name: {name}
  path: quarry/hackernews
  tables: ['*']
  destinations: [lite]
  spec: {{ start_time: {START_TIME}, base_url: 'http://{base}' }}
  permissions: {{ network: ['{grant}'] }}
---
"#
        )
    };
    std::fs::create_dir_all(server.dir.path().join("moved/v0")).expect("mkdir");
    std::fs::write(
        server.dir.path().join("moved/v0/maxitem.json.redirect"),
        format!("http://localhost:{port}/v0/maxitem.json"),
    )
    .expect("redirect");
    let w = Workdir::new();
    w.write(
        "spec.yml",
        &format!(
            r#"{}{}{}{}kind: destination
spec:
  name: lite
  path: quarry/sqlite
  write_mode: append
  spec: {{ connection_string: ./data/hn.db }}
  permissions: {{ files: {{ ./data: write }} }}
"#,
            source("granted", &address, &address),
            source("elsewhere", &format!("hn.example.invalid:{port}"), &address),
            source(
                "by_name",
                &format!("localhost:{port}"),
                &format!("localhost:{port}")
            ),
            source("moved", &format!("{address}/moved"), &address),
        ),
    );
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "GET http://hn.example.invalid:{port}/v0/maxitem.json was denied: plugin `elsewhere` has no network grant for hn.example.invalid:{port}; to allow it, add it to the plugin's spec: `permissions: {{ network: [\"hn.example.invalid:{port}\"] }}`"
        )),
        "{run:?}"
    );
    // `localhost` may resolve to ::1 as well, and first.
    assert!(
        run.stderr.contains(&format!(
            "GET http://localhost:{port}/v0/maxitem.json was denied: `localhost` resolves to "
        )) && run.stderr.contains("127.0.0.1 (loopback)"),
        "{run:?}"
    );
    assert!(
        [format!("127.0.0.1:{port}"), format!("[::1]:{port}")]
            .iter()
            .any(|grant| run.stderr.contains(&format!(
                "only when granted the address itself: `permissions: {{ network: [\"{grant}\"] }}`"
            ))),
        "{run:?}"
    );
    assert!(
        run.stderr.contains(&format!(
            "GET http://localhost:{port}/v0/maxitem.json was denied: plugin `moved` has no network grant for localhost:{port}"
        )),
        "the redirect's target is checked like any request: {run:?}"
    );
    let all = items_in(FIRST_ID..=LAST_ID);
    assert_eq!(
        ids(&query(
            &w.path().join("data/hn.db"),
            "SELECT id FROM hackernews_items WHERE _cq_source_name = 'granted' ORDER BY id"
        )),
        Vec::from_iter(all),
        "the granted source synced every item"
    );
    assert_eq!(
        query(
            &w.path().join("data/hn.db"),
            "SELECT count(*) FROM hackernews_items WHERE _cq_source_name <> 'granted'"
        ),
        "0"
    );
}

/// A sync that sends more requests than a plugin may hold handles (`MAX_HANDLES`, 4,096) in all:
/// each request's handles are freed, the `request-options` it hands the host included.
#[test]
fn a_sync_sends_more_requests_than_a_plugin_may_hold_handles() {
    const ITEMS: u64 = 5_000;
    let server = FileServer::start(0);
    let items = server.dir.path().join("v0/item");
    std::fs::create_dir_all(&items).expect("mkdir");
    for id in 1..=ITEMS {
        let item = serde_json::json!({
            "id": id, "type": "story", "by": "e2e", "time": START_SECONDS + id as i64,
            "title": format!("Story {id}"), "url": "https://example.com/", "score": 1,
            "descendants": 0, "kids": [],
        });
        std::fs::write(items.join(format!("{id}.json")), item.to_string()).expect("item");
    }
    std::fs::write(server.dir.path().join("v0/maxitem.json"), ITEMS.to_string()).expect("maxitem");
    let w = Workdir::new();
    w.write(
        "spec.yml",
        &format!(
            r#"kind: source
spec:
  name: hackernews
  path: quarry/hackernews
  tables: [hackernews_items]
  destinations: [discard]
  spec: {{ item_concurrency: 100, base_url: "http://{address}" }}
  permissions: {{ network: ["{address}"] }}
---
kind: destination
spec:
  name: discard
  path: quarry/test
  write_mode: append
"#,
            address = server.address
        ),
    );
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let fetched: BTreeSet<u64> = requested_items(&server).into_iter().collect();
    assert_eq!(fetched, (1..=ITEMS).collect::<BTreeSet<u64>>());
}

/// The item ids `server` was asked for, in the order of the requests.
fn requested_items(server: &FileServer) -> Vec<u64> {
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    log.lines()
        .filter_map(|l| {
            l.strip_prefix("GET /v0/item/")?
                .split_once(".json")?
                .0
                .parse()
                .ok()
        })
        .collect()
}
