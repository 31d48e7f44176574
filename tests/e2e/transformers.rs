//! Transformers (`kind: transformer`, a destination's `transformers:`): CloudQuery's `basic` and
//! `jsonflattener` as Quarry's own components, through the real host into DuckDB; and the ways a
//! transformer can fail, each stopping only its destination.

use crate::support::{Run, Workdir, duckdb_query, sqlite_query, store_source, transformer_fixture};

fn sync(w: &Workdir, spec: &str) -> Run {
    w.write("spec.yml", spec);
    w.quarry(&["sync", "spec.yml"])
}

fn sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const PEOPLE: &str = "[{ name: id, type: int64, primary_key: true }, { name: name, type: utf8 }, { name: email, type: utf8 }, { name: secret, type: utf8 }, { name: status, type: utf8 }]";

/// CloudQuery's basic transformations, in list order, each on the one before's output: the
/// schema DuckDB gets is the transformed one (a renamed table, a removed column, added ones),
/// the values are transformed, and delete-stale finds the renamed table.
#[test]
fn basic_transformations_reach_duckdb_as_cloudquery_applies_them() {
    let w = Workdir::new();
    let specs = |rows: &str| {
        format!(
            r#"{}---
kind: destination
spec:
  name: duck
  path: cloudquery/duckdb
  registry: cloudquery
  transformers: [basic]
  spec: {{ connection_string: people.db }}
---
kind: transformer
spec:
  name: basic
  path: cloudquery/basic
  registry: cloudquery
  version: v2.7.0
  spec:
    transformations:
      - kind: drop_rows
        tables: [items]
        columns: [status]
        value: deleted
      - kind: remove_columns
        tables: ['*']
        columns: [secret]
      - kind: obfuscate_columns
        tables: [items]
        columns: [email]
      - kind: rename_column
        tables: [items]
        name: name
        value: full_name
      - kind: uppercase
        tables: [items]
        columns: [full_name]
      - kind: change_table_names
        tables: ['*']
        new_table_name_template: 'crm_{{{{.OldName}}}}'
      - kind: add_column
        tables: [crm_items]
        name: region
        value: eu
      - kind: add_current_timestamp_column
        tables: [crm_*]
        name: loaded_at
"#,
            store_source(PEOPLE, rows, "duck")
        )
    };
    let first = "[[1, ada, ada@example.com, s1, active], [2, bob, bob@example.com, s2, deleted], [3, cy, null, s3, active], [4, dee, dee@example.com, s4, active]]";
    let run = sync(&w, &specs(first));
    assert_eq!(run.code, 0, "{run:?}");
    let db = w.path().join("people.db");
    let columns = duckdb_query(
        &db,
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_name NOT LIKE 'cloudquery%' ORDER BY table_name, ordinal_position",
    );
    assert_eq!(
        columns,
        [
            "crm_items\t_cq_source_name\tVARCHAR",
            "crm_items\t_cq_sync_time\tTIMESTAMP WITH TIME ZONE",
            "crm_items\t_cq_id\tUUID",
            "crm_items\t_cq_parent_id\tUUID",
            "crm_items\tid\tBIGINT",
            "crm_items\tfull_name\tVARCHAR",
            "crm_items\temail\tVARCHAR",
            "crm_items\tstatus\tVARCHAR",
            "crm_items\tregion\tVARCHAR",
            "crm_items\tloaded_at\tTIMESTAMP WITH TIME ZONE",
        ]
        .join("\n"),
        "no table `items`, no column `secret` or `name`"
    );
    let rows = duckdb_query(
        &db,
        "SELECT id, full_name, email, status, region, loaded_at IS NOT NULL FROM crm_items ORDER BY id",
    );
    let redacted = |email: &str| format!("Redacted by CloudQuery | {}", sha256(email));
    assert_eq!(
        rows,
        [
            format!("1\tADA\t{}\tactive\teu\ttrue", redacted("ada@example.com")),
            "3\tCY\tNULL\tactive\teu\ttrue".to_string(),
            format!("4\tDEE\t{}\tactive\teu\ttrue", redacted("dee@example.com")),
        ]
        .join("\n"),
        "row 2 dropped; emails redacted with their sha256; names renamed and uppercased"
    );
    // `validate` shows the chain, and the table as it leaves it.
    let validate = w.quarry(&["validate", "spec.yml"]);
    assert_eq!(validate.code, 0, "{validate:?}");
    assert!(
        validate
            .stdout
            .contains("  transformers: `basic` (cloudquery/basic 0.1.0)")
            && validate.stdout.contains("  crm_items "),
        "{validate:?}"
    );
    // The second sync lacks row 4: delete-stale removes it from the renamed table.
    let run = sync(
        &w,
        &specs("[[1, ada, ada@example.com, s1, active], [3, cy, null, s3, active]]"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        duckdb_query(
            &db,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM crm_items"
        ),
        "1,3"
    );
}

/// `jsonflattener`: the first level of a `json` column whose type schema the source declares
/// becomes typed columns `<column>__<key>` after the others; the json column stays.
#[test]
fn jsonflattener_turns_a_json_columns_keys_into_typed_duckdb_columns() {
    let w = Workdir::new();
    let columns = r#"[{ name: id, type: int64, primary_key: true }, { name: payload, type: json, type_schema: { user_name: utf8, count: int64, ratio: float64, ok: bool, at: "timestamp[us, tz=UTC]", tags: [utf8], nested: { a: utf8 } } }]"#;
    let rows = r#"[[1, { userName: ada, count: 3, ratio: 0.5, ok: true, at: "2024-03-07T11:00:00Z", tags: [x, y], nested: { a: b } }], [2, { userName: bob, count: "not a number", at: "2024-03-07 11:30:00" }], [3, null]]"#;
    let spec = format!(
        r#"{}---
kind: destination
spec:
  name: duck
  path: quarry/duckdb
  write_mode: append
  transformers: [flat]
  spec: {{ connection_string: events.db }}
---
kind: transformer
spec:
  name: flat
  path: quarry/jsonflattener
"#,
        store_source(columns, rows, "duck")
    );
    let run = sync(&w, &spec);
    assert_eq!(run.code, 0, "{run:?}");
    let db = w.path().join("events.db");
    assert_eq!(
        duckdb_query(
            &db,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'items' ORDER BY ordinal_position",
        ),
        [
            "_cq_source_name\tVARCHAR",
            "_cq_sync_time\tTIMESTAMP WITH TIME ZONE",
            "_cq_id\tUUID",
            "_cq_parent_id\tUUID",
            "id\tBIGINT",
            "payload\tJSON",
            "payload__at\tTIMESTAMP WITH TIME ZONE",
            "payload__count\tBIGINT",
            "payload__nested\tJSON",
            "payload__ok\tBOOLEAN",
            "payload__ratio\tDOUBLE",
            "payload__tags\tJSON",
            "payload__user_name\tVARCHAR",
        ]
        .join("\n")
    );
    assert_eq!(
        duckdb_query(
            &db,
            "SELECT id, payload__user_name, payload__count, payload__ratio, payload__ok, epoch_us(payload__at), payload__tags, payload__nested FROM items ORDER BY id",
        ),
        [
            "1\tada\t3\t0.5\ttrue\t1709809200000000\t[\"x\",\"y\"]\t{\"a\":\"b\"}",
            "2\tbob\tNULL\tNULL\tNULL\t1709811000000000\tNULL\tNULL",
            "3\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL",
        ]
        .join("\n"),
        "the data's camelCase keys match the schema's snake_case ones; a wrong type is null"
    );
}

/// A transformer that traps, one that returns an error, and one that returns rows of another
/// schema than it promised each stop their own destination with an error naming the
/// transformer and the table; the destination without a transformer gets every row.
#[test]
fn a_failing_transformer_stops_only_its_destination_with_a_clear_error() {
    let w = Workdir::new();
    let fixture = transformer_fixture().display().to_string();
    let transformer = |name: &str, spec: &str| {
        format!(
            "---\nkind: transformer\nspec:\n  name: {name}\n  registry: local\n  path: {fixture}\n  spec: {spec}\n"
        )
    };
    let destination = |name: &str, transformers: &str| {
        format!(
            "---\nkind: destination\nspec:\n  name: {name}\n  path: quarry/sqlite\n  write_mode: append\n  transformers: {transformers}\n  spec: {{ connection_string: ./data/{name}.db }}\n  permissions: {{ files: {{ ./data: write }} }}\n"
        )
    };
    let rows: Vec<String> = (0..50).map(|i| format!("[{i}, n{i}]")).collect();
    let spec = [
        store_source(
            "[{ name: id, type: int64 }, { name: name, type: utf8 }]",
            &format!("[{}]", rows.join(", ")),
            "good, trapped, failed, lied",
        ),
        destination("good", "[]"),
        destination("trapped", "[trap]"),
        destination("failed", "[fail]"),
        destination("lied", "[liar]"),
        transformer("trap", "{ trap_after_n_batches: 0 }"),
        transformer("fail", "{ fail_after_n_batches: 0 }"),
        transformer("liar", "{ lie_about_schema: true }"),
    ]
    .concat();
    w.write("data/.keep", "");
    let run = sync(&w, &spec);
    // A trap is a crash: exit 3 (an error returned would be 1).
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        sqlite_query(&w.path().join("data/good.db"), "SELECT count(*) FROM items"),
        "50"
    );
    for expected in [
        "plugin `trap` failed in transform of table `items`",
        "trapping at batch 0, as asked",
        "plugin `fail` failed in transform of table `items`: failing at the transformer stage after 0 batches, as asked",
        "plugin `lied` failed in transform of table `items`: the transformer `liar` returned rows for table `items` with columns (",
        "id Int64), but its transform-schema answer has (",
        "id Int64, name Utf8)",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{run:?}");
    }
}

/// A transformer may return more rows than it was given (one batch in, several out), but only as
/// many as fit in its own memory cap (what one call returns is copied out of that memory): one
/// that answers each batch 200,000 times over is stopped naming the limit, and its destination
/// alone fails. One that answers each batch three times has every copy written.
#[test]
fn an_amplifying_transformer_is_held_to_its_memory_cap() {
    let w = Workdir::new();
    let fixture = transformer_fixture().display().to_string();
    w.write("data/.keep", "");
    let spec = |copies: u32| {
        format!(
            r#"{}---
kind: destination
spec:
  name: good
  path: quarry/sqlite
  write_mode: append
  spec: {{ connection_string: ./data/good.db }}
  permissions: {{ files: {{ ./data: write }} }}
---
kind: destination
spec:
  name: amplified
  path: quarry/sqlite
  write_mode: append
  transformers: [amplifier]
  spec: {{ connection_string: ./data/amplified.db }}
  permissions: {{ files: {{ ./data: write }} }}
---
kind: transformer
spec:
  name: amplifier
  registry: local
  path: {fixture}
  spec: {{ amplify: {copies} }}
"#,
            store_source(
                "[{ name: id, type: int64 }]",
                "[[1], [2], [3]]",
                "good, amplified"
            )
        )
    };
    let run = sync(&w, &spec(3));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        sqlite_query(
            &w.path().join("data/amplified.db"),
            "SELECT id, count(*) FROM items GROUP BY id ORDER BY id"
        ),
        "1\t3\n2\t3\n3\t3"
    );

    let run = sync(&w, &spec(200_000));
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains(
            "plugin `amplifier` failed in transform of table `items`: it exceeded its memory limit of 1GiB"
        ),
        "{run:?}"
    );
    assert_eq!(
        sqlite_query(&w.path().join("data/good.db"), "SELECT count(*) FROM items"),
        "6"
    );
}

/// A transformer stuck in one call is stopped after `QUARRY_CALL_TIMEOUT`, and only its
/// destination fails: the source and the other destination finish.
#[test]
fn a_stuck_transformer_is_stopped_and_the_others_go_on() {
    let w = Workdir::new();
    let fixture = transformer_fixture().display().to_string();
    w.write("data/.keep", "");
    let spec = format!(
        r#"{}---
kind: destination
spec:
  name: good
  path: quarry/sqlite
  write_mode: append
  spec: {{ connection_string: ./data/good.db }}
  permissions: {{ files: {{ ./data: write }} }}
---
kind: destination
spec:
  name: stuck
  path: quarry/sqlite
  write_mode: append
  transformers: [spin]
  spec: {{ connection_string: ./data/stuck.db }}
  permissions: {{ files: {{ ./data: write }} }}
---
kind: transformer
spec:
  name: spin
  registry: local
  path: {fixture}
  spec: {{ spin: true }}
"#,
        store_source(
            "[{ name: id, type: int64 }]",
            "[[1], [2], [3]]",
            "good, stuck"
        )
    );
    w.write("spec.yml", &spec);
    let run = w.quarry_with(&["sync", "spec.yml"], &[("QUARRY_CALL_TIMEOUT", "2s")]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains(
            "plugin `spin` failed in transform of table `items`: one transform call ran past 2s"
        ),
        "{run:?}"
    );
    assert_eq!(
        sqlite_query(&w.path().join("data/good.db"), "SELECT count(*) FROM items"),
        "3"
    );
}

/// `kind: transformer` documents are checked like the others: a destination naming one that
/// is not defined, a source plugin declared as a transformer.
#[test]
fn transformer_mistakes_are_spec_errors() {
    let w = Workdir::new();
    let spec = format!(
        "{}---\nkind: destination\nspec:\n  name: duck\n  path: quarry/test\n  transformers: [basic, flatten]\n---\nkind: transformer\nspec:\n  name: basic\n  path: quarry/basic\n",
        store_source("[{ name: id, type: int64 }]", "[[1]]", "duck")
    );
    let run = sync(&w, &spec);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("destination `duck` references unknown transformer `flatten`")
            && run.stderr.contains("defined transformers: `basic`"),
        "{run:?}"
    );
    let spec = format!(
        "{}---\nkind: destination\nspec:\n  name: duck\n  path: quarry/test\n  transformers: [t]\n---\nkind: transformer\nspec:\n  name: t\n  path: quarry/test\n",
        store_source("[{ name: id, type: int64 }]", "[[1]]", "duck")
    );
    let run = sync(&w, &spec);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("`quarry/test` is a source plugin, not a transformer plugin"),
        "{run:?}"
    );
    // Two tables a transformer gives one name, with different schemas.
    let spec = "kind: source\nspec:\n  name: test\n  path: quarry/test\n  tables: [test_rows, test_parents]\n  skip_dependent_tables: true\n  destinations: [discard]\n---\nkind: destination\nspec:\n  name: discard\n  path: quarry/test\n  write_mode: append\n  transformers: [same]\n---\nkind: transformer\nspec:\n  name: same\n  path: quarry/basic\n  spec:\n    transformations:\n      - { kind: change_table_names, new_table_name_template: same }\n";
    let run = sync(&w, spec);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "destination `discard`: table `test_parents` of source `test` and table `test_rows` of source `test` both become table `same` (its transformers name both so), with different schemas"
        ),
        "{run:?}"
    );
}

/// A transformer over gRPC (protocol v3's `TransformSchema` and `Transform`), here Quarry's own
/// served by `quarry serve` and run as a native plugin: the same rows as the component.
#[test]
fn a_native_transformer_over_grpc_transforms_like_the_component() {
    let w = Workdir::new();
    crate::support::served(&w, "basic-plugin", "quarry/basic", &[]);
    w.write("data/.keep", "");
    let spec = |transformer: &str| {
        format!(
            r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [lite]
  spec: {{ num_rows: 2500, batch_size: 1000 }}
---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  write_mode: append
  transformers: [basic]
  spec: {{ connection_string: ./data/out.db }}
  permissions: {{ files: {{ ./data: write }} }}
---
kind: transformer
spec:
  name: basic
  {transformer}
  spec:
    transformations:
      - {{ kind: remove_columns, tables: [test_rows], columns: [payload, tags] }}
      - {{ kind: drop_rows, tables: [test_rows], columns: [flag], value: "true" }}
      - {{ kind: change_table_names, tables: ['*'], new_table_name_template: "t_{{{{.OldName}}}}" }}
"#
        )
    };
    let db = w.path().join("data/out.db");
    let summary = "SELECT count(*), sum(id % 3 = 0), min(id), max(id), sum(value) FROM t_test_rows";
    let run = sync(
        &w,
        &spec("registry: local\n  path: ./basic-plugin\n  native: true"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let native = sqlite_query(&db, summary);
    assert!(native.starts_with("1666\t0\t1\t2498\t"), "{native}");
    std::fs::remove_file(&db).expect("remove the database");
    let run = sync(&w, &spec("path: quarry/basic"));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(sqlite_query(&db, summary), native);
}
