//! obfuscate_columns_except, on CloudQuery's tests (`TestObfuscateColumnsExcept_*`).

use quarry_sdk::metadata;

use super::*;

fn except(columns: Value, unmatched: &str, include_sha: bool) -> Basic {
    basic(json!([{
        "kind": "obfuscate_columns_except",
        "columns": columns,
        "unmatched": unmatched,
        "include_sha": include_sha
    }]))
}

/// `createTestRecordWithPK`.
fn pk_record() -> RecordBatch {
    let table = Table::new("testTable")
        .column(Column::new("_cq_id", DataType::Utf8))
        .column(Column::new("uid", DataType::Utf8).primary_key())
        .column(Column::new("name", DataType::Utf8))
        .column(Column::new("secret", DataType::Utf8));
    batch(
        &table,
        vec![
            utf8(&[Some("cq1"), Some("cq2")]),
            utf8(&[Some("uid-1"), Some("uid-2")]),
            utf8(&[Some("pod-a"), Some("pod-b")]),
            utf8(&[Some("s1"), Some("s2")]),
        ],
    )
}

#[test]
fn redact_mode_keeps_the_allowlist_and_redacts_the_rest() {
    let mut plugin = except(json!(["col1"]), "redact", true);
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(out.schema(), cq_record().schema());
    assert_eq!(strings(&out, "col1"), some(&["val1", "val2"]));
    assert_eq!(
        strings(&out, "col2"),
        some(&[&marked("val3"), &marked("val4")])
    );
    assert_eq!(
        texts(&out, "col3")[0].as_deref(),
        Some(
            r#"{"redacted_by_cloudquery":"81f2a9ddc7ae49a6b585358c6ff54bbd26613c4a46a988b614e42bc5729eda36"}"#
        )
    );
}

/// Kept sub-paths stay; every other leaf becomes its own marker (hashed over its JSON, quotes
/// included); keys come out sorted, as Go writes maps.
#[test]
fn redact_mode_inside_a_json_column_marks_each_leaf() {
    let mut plugin = except(json!(["col1", "col2", "col3.foo.bar.0"]), "redact", true);
    let out = run_one(&mut plugin, cq_record());
    let (b, c, world) = (marked(r#""b""#), marked(r#""c""#), marked(r#""world""#));
    assert_eq!(
        texts(&out, "col3")[0].as_deref(),
        Some(format!(r#"{{"foo":{{"bar":["a","{b}","{c}"]}},"hello":"{world}"}}"#).as_str())
    );
}

#[test]
fn drop_mode_removes_columns_and_leaves() {
    let mut plugin = except(json!(["col1", "col3.hello"]), "drop", true);
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(names(&out.schema()), ["col1", "col3"]);
    assert_eq!(texts(&out, "col3"), some(&[r#"{"hello":"world"}"#, "{}"]));
}

/// `#` in an allowlist path keeps that key in every element (`TestObfuscateColumnsExcept_
/// DropModeArray`), and a value that is not JSON is redacted whole.
#[test]
fn drop_mode_keeps_paths_through_arrays() {
    let table = Table::new("t")
        .column(Column::new("_cq_id", DataType::Utf8))
        .column(json_field("spec_containers"));
    let input = batch(
        &table,
        vec![
            utf8(&[Some("id1"), Some("id2")]),
            binary(&[
                Some(r#"[{"image":"nginx","env":[{"name":"A","value":"1"}]},{"image":"redis"}]"#),
                Some("{oops"),
            ]),
        ],
    );
    let mut plugin = except(json!(["spec_containers.#.image"]), "drop", true);
    let out = run_one(&mut plugin, input);
    assert_eq!(
        texts(&out, "spec_containers"),
        some(&[
            r#"[{"image":"nginx"},{"image":"redis"}]"#,
            &format!(r#"{{"redacted_by_cloudquery":"{}"}}"#, sha("{oops")),
        ])
    );
}

/// One marker per subtree not kept, hashed over `json.Marshal` of it (sorted keys).
#[test]
fn collapse_mode_replaces_each_subtree_with_one_marker() {
    let mut plugin = except(json!(["col3.hello"]), "collapse", true);
    let out = run_one(&mut plugin, cq_record());
    let foo = marked(r#"{"bar":["a","b","c"]}"#);
    assert_eq!(
        texts(&out, "col3")[0].as_deref(),
        Some(format!(r#"{{"foo":"{foo}","hello":"world"}}"#).as_str())
    );
    assert_eq!(
        strings(&out, "col1")[0].as_deref(),
        Some(marked("val1").as_str())
    );
}

/// `_cq_*` columns pass; numbers, booleans and timestamps not allowlisted are dropped in every
/// mode (`TestObfuscateColumnsExcept_TypedColumnsNeverStringified`).
#[test]
fn internal_columns_pass_and_unredactable_columns_are_dropped() {
    let table = Table::new("t")
        .column(Column::new("_cq_sync_time", DataType::Int64))
        .column(Column::new("keep_me", DataType::Utf8))
        .column(Column::new("a_bool", DataType::Boolean))
        .column(Column::new("an_int", DataType::Int64));
    let input = batch(
        &table,
        vec![
            Arc::new(arrow_array::Int64Array::from(vec![5])),
            utf8(&[Some("v1")]),
            Arc::new(arrow_array::BooleanArray::from(vec![true])),
            Arc::new(arrow_array::Int64Array::from(vec![7])),
        ],
    );
    for mode in ["redact", "collapse", "drop"] {
        let mut plugin = except(json!(["keep_me"]), mode, true);
        let out = run_one(&mut plugin, input.clone());
        assert_eq!(names(&out.schema()), ["_cq_sync_time", "keep_me"], "{mode}");
    }
}

#[test]
fn include_sha_false_writes_bare_markers() {
    let mut plugin = except(json!(["col1"]), "redact", false);
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(
        strings(&out, "col2")[0].as_deref(),
        Some("Redacted by CloudQuery")
    );
    assert_eq!(
        texts(&out, "col3")[0].as_deref(),
        Some(r#"{"redacted_by_cloudquery":"Redacted by CloudQuery"}"#)
    );
}

#[test]
fn primary_keys_must_survive() {
    let mut plugin = except(json!(["name"]), "drop", true);
    let error = run_error(&mut plugin, pk_record());
    assert!(
        error.ends_with(r#"primary-key column "uid" is not on the allowlist; with unmatched=drop it would be removed and break row identity at the destination; add "uid" to the allowlist"#),
        "{error}"
    );
    let mut plugin = except(json!(["name"]), "redact", false);
    let error = run_error(&mut plugin, pk_record());
    assert!(error.contains("include_sha=false"), "{error}");
    // With the hash, a redacted key stays distinct per row.
    let mut plugin = except(json!(["name"]), "redact", true);
    let out = run_one(&mut plugin, pk_record());
    assert_eq!(
        strings(&out, "uid"),
        some(&[&marked("uid-1"), &marked("uid-2")])
    );
    assert_eq!(strings(&out, "_cq_id"), some(&["cq1", "cq2"]));
    // A key of a type that cannot be redacted.
    let table = Table::new("t")
        .column(Column::new("id", DataType::Int64).primary_key())
        .column(Column::new("name", DataType::Utf8));
    let input = batch(
        &table,
        vec![
            Arc::new(arrow_array::Int64Array::from(vec![1])),
            utf8(&[Some("a")]),
        ],
    );
    let mut plugin = except(json!(["name"]), "collapse", true);
    let error = run_error(&mut plugin, input);
    assert!(
        error.contains(r#""id" has type int64 that cannot be redacted"#),
        "{error}"
    );
    assert!(
        pk_record()
            .schema()
            .field(1)
            .metadata()
            .contains_key(metadata::PRIMARY_KEY)
    );
}

#[test]
fn unknown_columns_nested_paths_on_plain_columns_and_dropping_everything_are_errors() {
    let mut plugin = except(
        json!(["col1", "zz", "does_not_exist", "aa.x"]),
        "redact",
        true,
    );
    let error = run_error(&mut plugin, cq_record());
    assert!(
        error.ends_with(
            "obfuscate_columns_except allowlist references unknown column(s): aa, does_not_exist, zz"
        ),
        "{error}"
    );
    let mut plugin = except(json!(["col1.foo"]), "redact", true);
    let error = run_error(&mut plugin, cq_record());
    assert!(
        error.ends_with(r#"column "col1" is referenced with a nested path in the allowlist but is not a JSON column"#),
        "{error}"
    );
    let table = Table::new("t").column(Column::new("count", DataType::Int64));
    let input = batch(
        &table,
        vec![Arc::new(arrow_array::Int64Array::from(vec![1]))],
    );
    let mut plugin = except(json!(["_cq_id"]), "redact", true);
    let error = run_error(&mut plugin, input.clone());
    assert!(error.contains("unknown column(s): _cq_id"), "{error}");
    let table = Table::new("t")
        .column(Column::new("count", DataType::Int64))
        .column(Column::new("label", DataType::Utf8));
    let input = batch(
        &table,
        vec![
            Arc::new(arrow_array::Int64Array::from(vec![1])),
            utf8(&[Some("a")]),
        ],
    );
    let mut plugin = except(json!(["label"]), "drop", true);
    let out = run_one(&mut plugin, input.clone());
    assert_eq!(names(&out.schema()), ["label"]);
    let table = Table::new("t").column(Column::new("count", DataType::Int64));
    let input = batch(
        &table,
        vec![Arc::new(arrow_array::Int64Array::from(vec![1]))],
    );
    let mut plugin = basic(json!([{
        "kind": "obfuscate_columns_except", "columns": ["other"], "tables": ["x"]
    }]));
    assert_eq!(run_one(&mut plugin, input.clone()), input);
}

/// Go's encoder: strings re-escaped (no HTML escaping in the output), numbers as written,
/// null leaves kept under redact and dropped under drop; the markers hash `json.Marshal`
/// (HTML-escaped) text.
#[test]
fn json_is_rewritten_as_go_writes_it() {
    let text = r#"{"z": 1.50, "a": "<b>", "n": null, "k": {"x": "\u00e9"}}"#;
    let out = crate::except::redact_except(
        text,
        &[vec!["k".to_string()]],
        true,
        crate::transform::Unmatched::Redact,
    );
    let lt = marked(r#""\u003cb\u003e""#);
    let num = marked("1.50");
    assert_eq!(
        out.as_deref(),
        Some(format!(r#"{{"a":"{lt}","k":{{"x":"é"}},"n":null,"z":"{num}"}}"#).as_str())
    );
    let out = crate::except::redact_except(
        text,
        &[vec!["k".to_string()]],
        true,
        crate::transform::Unmatched::Drop,
    );
    assert_eq!(out.as_deref(), Some(r#"{"k":{"x":"é"}}"#));
    // A scalar document with nothing kept is `null` under drop.
    let out = crate::except::redact_except(
        "5",
        &[vec!["k".to_string()]],
        true,
        crate::transform::Unmatched::Drop,
    );
    assert_eq!(out.as_deref(), Some("null"));
}
