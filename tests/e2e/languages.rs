//! Plugins written in Python and JavaScript: each SDK's own tests (plain Python with pyarrow, Node
//! with apache-arrow), and the example plugins (`examples/python-source`, `examples/js-source`,
//! built by `scripts/plugins` with componentize-py and componentize-js) through the real host
//! into DuckDB and SQLite, held to their grants.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{FileServer, Run, Workdir, duckdb_query, sqlite_query, tools, wasm_dir};

/// A component `scripts/plugins` built.
fn component(file: &str) -> PathBuf {
    let path = wasm_dir().join(file);
    assert!(
        path.exists(),
        "{} is missing: build it with scripts/plugins",
        path.display()
    );
    path
}

fn python_example() -> PathBuf {
    component("quarry_python_example.wasm")
}

fn js_example() -> PathBuf {
    component("quarry_js_example.wasm")
}

/// `plugin` as the source `py` into `destinations`, with `spec` and `permissions`.
fn source_of(
    plugin: &Path,
    tables: &str,
    spec: &str,
    permissions: &str,
    destinations: &str,
) -> String {
    format!(
        r#"kind: source
spec:
  name: py
  registry: local
  path: {}
  tables: {tables}
  destinations: {destinations}
  spec: {{ {spec} }}
  permissions: {{ {permissions} }}
"#,
        plugin.display()
    )
}

/// The Python example as the source `py`.
fn source(tables: &str, spec: &str, permissions: &str, destinations: &str) -> String {
    source_of(&python_example(), tables, spec, permissions, destinations)
}

const DUCKDB: &str = r#"---
kind: destination
spec:
  name: duck
  path: quarry/duckdb
  spec: { connection_string: py.duckdb }
"#;

const SQLITE: &str = r#"---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  spec: { connection_string: ./data/py.db }
  permissions: { files: { ./data: write } }
"#;

/// Every value of `test_rows` in the DuckDB file `db`, as a count and a digest.
fn test_rows_digest(db: &Path) -> String {
    duckdb_query(
        db,
        "SELECT count(*), md5(string_agg(concat_ws('|', id, name, value, flag, created_at, \
         payload, tags::VARCHAR), chr(10) ORDER BY id)) FROM test_rows",
    )
}

/// The Rust `test` source's `test_rows` (`rows` of them) in `rust.duckdb`: what the examples in
/// other languages must reproduce exactly.
fn rust_test_rows(w: &Workdir, rows: u64) -> PathBuf {
    let spec = format!(
        "kind: source\nspec:\n  name: rust\n  path: quarry/test\n  tables: [test_rows]\n  \
         destinations: [rust]\n  spec: {{ num_rows: {rows} }}\n---\nkind: destination\nspec:\n  \
         name: rust\n  path: quarry/duckdb\n  spec: {{ connection_string: rust.duckdb }}\n"
    );
    w.write("rust.yml", &spec);
    let run = w.quarry(&["sync", "rust.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    w.path().join("rust.duckdb")
}

/// 25,000 `test_rows` in both databases, the same values as the Rust `test` source's, every one
/// of them (and the last row spelled out, for whoever reads a failure).
fn assert_test_rows(w: &Workdir, duck: &Path, lite: &Path) {
    assert_eq!(
        test_rows_digest(duck),
        test_rows_digest(&rust_test_rows(w, 25000))
    );
    let last = "SELECT count(*), max(id), min(name), sum(flag::int), max(payload) FROM test_rows";
    assert_eq!(
        duckdb_query(duck, last),
        "25000\t24999\tname_00000000000\t8334\t{\"ref\":\"00000024999\",\"name\":\"name_00000024999\",\"score\":\"999\",\"group\":\"g70\",\"active\":1,\"note\":\"lorem\"}"
    );
    assert_eq!(
        duckdb_query(
            duck,
            "SELECT value, created_at, tags FROM test_rows WHERE id = 24999"
        ),
        "3571.285714285714\t2024-01-01 06:56:39.000999+00\t[a4, b49, c499]"
    );
    assert_eq!(
        sqlite_query(lite, "SELECT count(*), sum(flag), max(id) FROM test_rows"),
        "25000\t8334\t24999"
    );
}

/// Syncs `spec` (into `SQLITE`), which must succeed, and answers `sql` from its database.
fn synced_rows(w: &Workdir, spec: &str, sql: &str) -> String {
    let run = sync(w, spec);
    assert_eq!(run.code, 0, "{run:?}");
    sqlite_query(&w.path().join("data/py.db"), sql)
}

fn sync(w: &Workdir, spec: &str) -> Run {
    w.write("spec.yml", spec);
    w.quarry(&["sync", "spec.yml"])
}

#[test]
fn the_python_sdk_passes_its_unit_tests() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["guest-sdk/python/tests", "examples/python-source"] {
        let out = Command::new(tools().join("venv/bin/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .args(["-m", "unittest", "discover", "-s", dir])
            .current_dir(&root)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_python_example_syncs_every_type_into_duckdb_and_sqlite() {
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("data")).unwrap();
    // Cursors kept in DuckDB, for `py_increments`.
    let spec = source(
        "['*']",
        "num_rows: 25000, batch_size: 10000",
        "",
        "[duck, lite]",
    )
    .replace(
        "  destinations:",
        "  backend_options: { table_name: py_state, connection: \"@@plugins.duck.connection\" }\n  destinations:",
    ) + DUCKDB
        + SQLITE;
    let run = sync(&w, &spec);
    assert_eq!(run.code, 0, "{run:?}");
    let duck = w.path().join("py.duckdb");
    let lite = w.path().join("data/py.db");

    // Every type, exactly: the extremes, the nulls, and text outside ASCII.
    let columns = "id, i8, i16, i32, u8, u16, u32, u64, f32, f64, flag, text, blob, uid, doc, \
                   day, \"at\", words, numbers";
    assert_eq!(
        duckdb_query(
            &duck,
            &format!("SELECT {columns} FROM py_types ORDER BY id")
        ),
        "1\t-128\t-32768\t-2147483648\t255\t65535\t4294967295\t9223372036854775813\t1.5\t-2.25\ttrue\tplain\t\\x00\\x01\\xFF\t12345678-1234-5678-9abc-def012345678\t{\"a\":[1,2],\"b\":null}\t2024-02-29\t2024-01-02 03:04:05.678901+00\t[x, y]\t[1, NULL, 3]\n\
         2\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\n\
         3\t127\t32767\t2147483647\t0\t0\t0\t0\t-0.5\t1e+300\tfalse\théllo ☃ 𝄞\t\t00000000-0000-0000-0000-000000000001\t\"text\"\t1969-12-31\t1969-12-31 23:59:59+00\t[]\t[]"
    );
    // SQLite keeps 2^63 + 5 (past its integers) as text, and the helper prints 1e300 in full.
    assert_eq!(
        sqlite_query(
            &lite,
            &format!("SELECT {columns} FROM py_types ORDER BY id")
        ),
        format!(
            "1\t-128\t-32768\t-2147483648\t255\t65535\t4294967295\t9223372036854775813\t1.5\t-2.25\t1\tplain\t0001ff\t12345678-1234-5678-9abc-def012345678\t{{\"a\":[1,2],\"b\":null}}\t2024-02-29\t2024-01-02 03:04:05.678901\t[\"x\",\"y\"]\t[1,null,3]\n\
             2\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\n\
             3\t127\t32767\t2147483647\t0\t0\t0\t0\t-0.5\t1{}\t0\théllo ☃ 𝄞\t\t00000000-0000-0000-0000-000000000001\t\"text\"\t1969-12-31\t1969-12-31 23:59:59.000000\t[]\t[]",
            "0".repeat(300)
        )
    );

    assert_test_rows(&w, &duck, &lite);

    // Children point at their parents.
    for (query, name) in [
        (
            duckdb_query as fn(&std::path::Path, &str) -> String,
            "duckdb",
        ),
        (sqlite_query, "sqlite"),
    ] {
        let db = if name == "duckdb" { &duck } else { &lite };
        assert_eq!(
            query(
                db,
                "SELECT p.id, count(*) FROM py_children c JOIN py_parents p \
                 ON c._cq_parent_id = p._cq_id AND c.parent_id = p.id GROUP BY p.id ORDER BY p.id"
            ),
            "0\t2\n1\t2\n2\t2",
            "{name}"
        );
    }

    // The incremental table continues from its cursor.
    let run = sync(&w, &spec.replace("['*']", "[py_increments]"));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        duckdb_query(
            &duck,
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM py_increments"
        ),
        "50000\t50000\t0\t49999"
    );
}

#[test]
fn a_python_plugin_reads_a_file_only_when_granted() {
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("data")).unwrap();
    std::fs::create_dir(w.path().join("in")).unwrap();
    std::fs::write(w.path().join("secret.txt"), "top secret\n").unwrap();
    std::fs::write(w.path().join("in/lines.txt"), "first\nsecond\n").unwrap();

    let denied = source("[py_lines]", "file: secret.txt", "", "[lite]") + SQLITE;
    let run = sync(&w, &denied);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("cannot read `file` secret.txt")
            && run
                .stderr
                .contains("grant its directory under `permissions.files`")
            && !run.stderr.contains("top secret"),
        "{run:?}"
    );

    let granted = source(
        "[py_lines]",
        "file: in/lines.txt",
        "files: { ./in: read }",
        "[lite]",
    ) + SQLITE;
    assert_eq!(
        synced_rows(
            &w,
            &granted,
            "SELECT line, text FROM py_lines ORDER BY line"
        ),
        "1\tfirst\n2\tsecond"
    );
}

#[test]
fn a_python_plugin_reaches_only_granted_hosts() {
    let server = FileServer::start(0);
    std::fs::write(
        server.dir.path().join("items.json"),
        r#"[{"id": 1, "title": "one", "tags": ["a"]}, {"id": 2, "title": "two", "tags": null}]"#,
    )
    .unwrap();
    let url = format!("http://{}/items.json", server.address);
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("data")).unwrap();

    let denied = source("[py_http]", &format!("url: '{url}'"), "", "[lite]") + SQLITE;
    let run = sync(&w, &denied);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "error: plugin `py` failed in sync: GET {url} was denied: plugin `py` has no network grant for {}",
            server.address
        )) && run.stderr.contains(&format!(
            "`permissions: {{ network: [\"{}\"] }}`",
            server.address
        )),
        "{run:?}"
    );

    // Asked at its old address, the list answers 302 to its new one: the SDK follows.
    std::fs::write(server.dir.path().join("old.json.redirect"), "/items.json").unwrap();
    let granted = source(
        "[py_http]",
        &format!("url: 'http://{}/old.json'", server.address),
        &format!("network: ['{}']", server.address),
        "[lite]",
    ) + SQLITE;
    assert_eq!(
        synced_rows(
            &w,
            &granted,
            "SELECT id, title, tags FROM py_http ORDER BY id"
        ),
        "1\tone\t[\"a\"]\n2\ttwo\tNULL"
    );
}

#[test]
fn plugin_check_passes_on_the_python_and_javascript_examples() {
    let w = Workdir::new();
    for plugin in [python_example(), js_example()] {
        let run = w.quarry(&["plugin", "check", plugin.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{run:?}");
    }
}

#[test]
fn the_javascript_sdk_passes_its_unit_tests() {
    // Copied beside the pinned npm packages, so `apache-arrow` resolves as in a bundle, with the
    // SDK as the package `quarry-sdk` the example imports.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let modules = tools().join("componentize-js");
    let dir = tempfile::tempdir_in(&modules).expect("tempdir beside node_modules");
    let copy = |from: &Path, to: &Path| {
        let status = Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .expect("cp");
        assert!(status.success());
    };
    std::fs::create_dir(dir.path().join("node_modules")).unwrap();
    copy(
        &root.join("guest-sdk/js"),
        &dir.path().join("node_modules/quarry-sdk"),
    );
    copy(
        &root.join("examples/js-source"),
        &dir.path().join("example"),
    );
    let out = Command::new("node")
        .args([
            "--test",
            "node_modules/quarry-sdk/test/sdk.test.mjs",
            "example/example.test.mjs",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The SDK's declared types are valid TypeScript (tsc comes with the build tools).
    let out = Command::new(modules.join("node_modules/.bin/tsc"))
        .args([
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "node_modules/quarry-sdk/index.d.ts",
            "node_modules/quarry-sdk/http.d.ts",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run tsc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The paginated API the JavaScript example reads: three pages of items.
fn item_pages(server: &FileServer) {
    let dir = server.dir.path().join("v1/items");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let pages = [
        r#"{"items": [{"id": 1, "title": "one", "tags": ["a"]}, {"id": 2, "title": "two"}], "next": "/v1/items/2.json"}"#,
        r#"{"items": [{"id": 3, "title": "thrée", "tags": {"k": 1}}], "next": "3.json"}"#,
        r#"{"items": [], "next": null}"#,
    ];
    for (i, page) in pages.iter().enumerate() {
        std::fs::write(dir.join(format!("{}.json", i + 1)), page).expect("write a page");
    }
    // Page 2 has moved: its old address answers 302, which the SDK follows.
    std::fs::rename(dir.join("2.json"), dir.join("moved-2.json")).expect("move page 2");
    std::fs::write(dir.join("2.json.redirect"), "/v1/items/moved-2.json").expect("redirect");
}

#[test]
fn the_javascript_example_syncs_into_duckdb_and_sqlite() {
    let server = FileServer::start(0);
    item_pages(&server);
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("data")).unwrap();
    let spec = source_of(
        &js_example(),
        "['*']",
        &format!(
            "num_rows: 25000, batch_size: 10000, base_url: 'http://{}/v1'",
            server.address
        ),
        &format!("network: ['{}']", server.address),
        "[duck, lite]",
    ) + DUCKDB
        + SQLITE;
    let run = sync(&w, &spec);
    assert_eq!(run.code, 0, "{run:?}");
    let duck = w.path().join("py.duckdb");
    let lite = w.path().join("data/py.db");

    assert_eq!(
        duckdb_query(
            &duck,
            "SELECT id, i8, u32, u64, f64, flag, text, blob, uid, doc, day, \"at\", words FROM js_types ORDER BY id"
        ),
        "1\t-128\t4294967295\t9223372036854775813\t-2.25\ttrue\tplain\t\\x00\\x01\\xFF\t12345678-1234-5678-9abc-def012345678\t{\"a\":[1,2],\"b\":null}\t2024-02-29\t2024-01-02 03:04:05.678+00\t[x, y]\n\
         2\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\n\
         3\t127\t0\t0\t1e+300\tfalse\théllo ☃ 𝄞\t\t00000000-0000-0000-0000-000000000001\t\"text\"\t1969-12-31\t2024-01-01 00:00:00.000001+00\t[]"
    );
    assert_eq!(
        sqlite_query(
            &lite,
            "SELECT id, u64, blob, uid, doc, day, \"at\", words FROM js_types WHERE id <> 2 ORDER BY id"
        ),
        "1\t9223372036854775813\t0001ff\t12345678-1234-5678-9abc-def012345678\t{\"a\":[1,2],\"b\":null}\t2024-02-29\t2024-01-02 03:04:05.678000\t[\"x\",\"y\"]\n\
         3\t0\t\t00000000-0000-0000-0000-000000000001\t\"text\"\t1969-12-31\t2024-01-01 00:00:00.000001\t[]"
    );
    assert_test_rows(&w, &duck, &lite);
    for db in [
        duckdb_query(
            &duck,
            "SELECT id, title, tags, page FROM js_items ORDER BY id",
        ),
        sqlite_query(
            &lite,
            "SELECT id, title, tags, page FROM js_items ORDER BY id",
        ),
    ] {
        assert_eq!(
            db,
            "1\tone\t[\"a\"]\t1\n2\ttwo\tNULL\t1\n3\tthrée\t{\"k\":1}\t2"
        );
    }
}

#[test]
fn a_javascript_plugin_reaches_only_granted_hosts() {
    let server = FileServer::start(0);
    item_pages(&server);
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("data")).unwrap();
    let url = format!("http://{}/v1", server.address);
    let spec = source_of(
        &js_example(),
        "[js_items]",
        &format!("base_url: '{url}'"),
        "",
        "[lite]",
    ) + SQLITE;
    let run = sync(&w, &spec);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "error: plugin `py` failed in sync: GET {url}/items/1.json was denied: plugin `py` has no network grant for {}",
            server.address
        )),
        "{run:?}"
    );
}

/// More requests than a plugin may hold handles (4,096): the SDK drops every handle of a request
/// and the host frees the request options it was handed, so none accumulate.
#[test]
fn a_javascript_plugin_sends_more_requests_than_it_may_hold_handles() {
    const PAGES: usize = 4_200;
    let server = FileServer::start(0);
    let dir = server.dir.path().join("v1/items");
    std::fs::create_dir_all(&dir).unwrap();
    for page in 1..=PAGES {
        let next = if page < PAGES {
            format!("\"{}.json\"", page + 1)
        } else {
            "null".into()
        };
        let text = format!(r#"{{"items": [{{"id": {page}, "title": "p"}}], "next": {next}}}"#);
        std::fs::write(dir.join(format!("{page}.json")), text).unwrap();
    }
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("data")).unwrap();
    let spec = source_of(
        &js_example(),
        "[js_items]",
        &format!(
            "base_url: 'http://{}/v1', max_pages: {PAGES}",
            server.address
        ),
        &format!("network: ['{}']", server.address),
        "[lite]",
    ) + SQLITE;
    assert_eq!(
        synced_rows(&w, &spec, "SELECT count(*), max(page) FROM js_items"),
        format!("{PAGES}\t{PAGES}")
    );
}
