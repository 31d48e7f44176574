//! obfuscate_columns and obfuscate_sensitive_columns, on CloudQuery's test vectors.

use super::*;

const MARKER_VAL1: &str =
    "Redacted by CloudQuery | cc1d9c865e8380c2d566dc724c66369051acfaa3e9e8f36ad6c67d7d9b8461a5";

/// The hash vector of CloudQuery's tests: sha256("val1") = cc1d9c86…61a5.
#[test]
fn the_marker_hashes_the_value_with_sha256() {
    assert_eq!(crate::obfuscate::marker(b"val1", true), MARKER_VAL1);
    assert!(sha("val1").starts_with("cc1d9c86") && sha("val1").ends_with("61a5"));
    assert_eq!(
        crate::obfuscate::marker(b"val1", false),
        "Redacted by CloudQuery"
    );
}

/// CloudQuery's `TestObfuscateColumns`.
#[test]
fn obfuscate_columns_redacts_strings_and_json_paths() {
    let mut plugin = basic(json!([
        {"kind": "obfuscate_columns", "columns": ["col1", "col3.foo.bar.0", "col3.foo.bar.1"]}
    ]));
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(out.schema(), cq_record().schema());
    assert_eq!(
        strings(&out, "col1"),
        some(&[
            MARKER_VAL1,
            "Redacted by CloudQuery | 528e5290f8ff0eb0325f0472b9c1a9ef4fac0b02ff6094b64d9382af4a10444b"
        ])
    );
    assert_eq!(strings(&out, "col2"), some(&["val3", "val4"]));
    let m = "Redacted by CloudQuery |";
    assert_eq!(
        texts(&out, "col3"),
        some(&[
            &format!(
                r#"{{"foo":{{"bar":["{m} ac8d8342bbb2362d13f0a559a3621bb407011368895164b628a54f7fc33fc43c","{m} c100f95c1913f9c72fc1f4ef0847e1e723ffe0bde0b36e5f36c13f81fe8c26ed","c"]}},"hello":"world"}}"#
            ),
            &format!(
                r#"{{"foo":{{"bar":["{m} 3fa5834dc920d385ca9b099c9fe55dcca163a6b256a261f8f147291b0e7cf633","{m} 8c8656c5d114d7f8b2a412d2d5fd03accce3ed050624a0493734591a9666b110","f"]}}}}"#
            ),
        ])
    );
}

/// CloudQuery's `TestObfuscateColumns_IncludeSHAFalse`; nulls stay null.
#[test]
fn obfuscate_columns_without_sha_writes_the_bare_marker() {
    let table = Table::new("t").column(Column::new("s", DataType::Utf8));
    let input = batch(&table, vec![utf8(&[Some("a"), None])]);
    let mut plugin = basic(json!([
        {"kind": "obfuscate_columns", "columns": ["s"], "include_sha": false}
    ]));
    let out = run_one(&mut plugin, input);
    assert_eq!(
        strings(&out, "s"),
        vec![Some("Redacted by CloudQuery".to_string()), None]
    );
}

/// CloudQuery's `TestObfuscateNestedColumnsWithGjsonSyntax`: one hash over every element the
/// `#` path reaches, the same marker in each.
#[test]
fn obfuscate_columns_through_every_array_element_shares_one_hash() {
    let table = Table::new("t").column(json_field("doc"));
    let input = batch(
        &table,
        vec![binary(&[Some(
            r#"{"top_foo":[{"foo":"baz0"},{"foo":"baz1"},{"foo":"baz2"}]}"#,
        )])],
    );
    let mut plugin = basic(json!([
        {"kind": "obfuscate_columns", "columns": ["doc.top_foo.#.foo"]}
    ]));
    let out = run_one(&mut plugin, input);
    let m = marked(r#"["baz0","baz1","baz2"]"#);
    assert_eq!(
        texts(&out, "doc"),
        some(&[&format!(
            r#"{{"top_foo":[{{"foo":"{m}"}},{{"foo":"{m}"}},{{"foo":"{m}"}}]}}"#
        )])
    );
}

/// CloudQuery's `TestAutoObfuscateColumns`: sensitive columns from the table's metadata,
/// a binary column redacted as bytes.
#[test]
fn obfuscate_sensitive_columns_reads_the_table_metadata() {
    let sensitive = r#"["col1","col3.foo.bar.0","col3.foo.bar.1","col4"]"#;
    let input = cq_record_with(&[(crate::obfuscate::SENSITIVE_COLUMNS, sensitive)]);
    let mut plugin = basic(json!([{"kind": "obfuscate_sensitive_columns"}]));
    let out = run_one(&mut plugin, input.clone());
    assert_eq!(out.schema(), input.schema());
    assert_eq!(strings(&out, "col1")[0].as_deref(), Some(MARKER_VAL1));
    assert_eq!(
        texts(&out, "col4"),
        some(&[
            MARKER_VAL1,
            "Redacted by CloudQuery | 44a036a895f1f40e3bf8cf930f287edc1cf0a0d0c75b36d1d25b777577f37e7e"
        ])
    );
    assert!(texts(&out, "col3")[0].as_deref().is_some_and(|v| {
        v.contains("ac8d8342bbb2362d13f0a559a3621bb407011368895164b628a54f7fc33fc43c")
    }));
}

/// CloudQuery's `TestAutoObfuscateEntireJSONColumn` and
/// `TestAutoObfuscateEntireJSONColumnSkipsJsonPath`: a whole JSON column becomes
/// `{"redacted_by_cloudquery":"<sha>"}`, and wins over a path into it.
#[test]
fn obfuscating_a_whole_json_column_writes_the_redaction_object() {
    let expected = some(&[
        r#"{"redacted_by_cloudquery":"81f2a9ddc7ae49a6b585358c6ff54bbd26613c4a46a988b614e42bc5729eda36"}"#,
        r#"{"redacted_by_cloudquery":"b56ea9a87c46567fc64564f68461e8f1068ffa515eee20c3387b97bc17f24cda"}"#,
    ]);
    for listed in [r#"["col3"]"#, r#"["col3.foo","col3"]"#] {
        let input = cq_record_with(&[(crate::obfuscate::SENSITIVE_COLUMNS, listed)]);
        let mut plugin = basic(json!([{"kind": "obfuscate_sensitive_columns"}]));
        let out = run_one(&mut plugin, input);
        assert_eq!(texts(&out, "col3"), expected, "{listed}");
        assert_eq!(strings(&out, "col1"), some(&["val1", "val2"]));
    }
    let mut plugin = basic(json!([
        {"kind": "obfuscate_columns", "columns": ["col3"], "include_sha": false}
    ]));
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(
        texts(&out, "col3")[0].as_deref(),
        Some(r#"{"redacted_by_cloudquery":"Redacted by CloudQuery"}"#)
    );
}

#[test]
fn obfuscate_sensitive_columns_without_a_list_passes_and_with_a_bad_one_fails() {
    let mut plugin = basic(json!([{"kind": "obfuscate_sensitive_columns"}]));
    assert_eq!(run_one(&mut plugin, cq_record()), cq_record());
    let input = cq_record_with(&[(crate::obfuscate::SENSITIVE_COLUMNS, "null")]);
    assert_eq!(run_one(&mut plugin, input.clone()), input);
    let input = cq_record_with(&[(crate::obfuscate::SENSITIVE_COLUMNS, "[not json")]);
    let error = run_error(&mut plugin, input);
    assert!(
        error.contains("failed to unmarshal sensitive columns: "),
        "{error}"
    );
}

/// Only utf8, binary and JSON columns can be obfuscated; inet (binary storage) is not binary.
#[test]
fn obfuscating_other_types_is_an_error() {
    let table = Table::new("t")
        .column(Column::new("n", DataType::Int64))
        .column(Column::extension("ip", Extension::Inet));
    let input = batch(
        &table,
        vec![
            Arc::new(arrow_array::Int64Array::from(vec![1])),
            binary(&[Some("10.0.0.1/8")]),
        ],
    );
    for column in ["n", "ip"] {
        let mut plugin = basic(json!([{"kind": "obfuscate_columns", "columns": [column]}]));
        let error = run_error(&mut plugin, input.clone());
        assert!(
            error.ends_with(&format!(
                "column {column} is not a string, binary or JSON column"
            )),
            "{error}"
        );
    }
    let mut plugin = basic(json!([{"kind": "obfuscate_columns", "columns": ["n.x"]}]));
    let error = run_error(&mut plugin, input);
    assert!(error.ends_with("column n is not a JSON column"), "{error}");
}
