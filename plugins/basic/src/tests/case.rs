//! uppercase and lowercase (CloudQuery's `TestChangeCase*`).

use super::*;

#[test]
fn uppercase_and_lowercase_change_utf8_columns() {
    let mut plugin = basic(json!([{"kind": "uppercase", "columns": ["col1", "col2", "nope"]}]));
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(strings(&out, "col1"), some(&["VAL1", "VAL2"]));
    assert_eq!(strings(&out, "col2"), some(&["VAL3", "VAL4"]));
    let mut plugin = basic(json!([{"kind": "lowercase", "columns": ["col1"]}]));
    let out = run_one(&mut plugin, out);
    assert_eq!(strings(&out, "col1"), some(&["val1", "val2"]));
    assert_eq!(out.schema(), cq_record().schema());
}

/// A JSON column listed whole changes as text, keys included.
#[test]
fn a_whole_json_column_changes_keys_too() {
    let mut plugin = basic(json!([{"kind": "uppercase", "columns": ["col3"]}]));
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(
        texts(&out, "col3"),
        some(&[
            r#"{"FOO":{"BAR":["A","B","C"]},"HELLO":"WORLD"}"#,
            r#"{"FOO":{"BAR":["D","E","F"]}}"#
        ])
    );
}

/// A path changes only the strings it reaches.
#[test]
fn a_json_path_changes_only_its_strings() {
    let mut plugin = basic(json!([
        {"kind": "uppercase", "columns": ["col3.foo.bar.0", "col3.foo.bar.1", "col3.hello"]}
    ]));
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(
        texts(&out, "col3"),
        some(&[
            r#"{"foo":{"bar":["A","B","c"]},"hello":"WORLD"}"#,
            r#"{"foo":{"bar":["D","E","f"]}}"#
        ])
    );
    // Through `#`, every element's string; numbers are left alone.
    let table = Table::new("t").column(json_field("doc"));
    let input = batch(
        &table,
        vec![binary(&[Some(
            r#"{"l":[{"n":"ab"},{"n":5},{"m":"x"},{"n":"é\"q"}]}"#,
        )])],
    );
    let mut plugin = basic(json!([{"kind": "uppercase", "columns": ["doc.l.#.n"]}]));
    let out = run_one(&mut plugin, input);
    assert_eq!(
        texts(&out, "doc"),
        some(&[r#"{"l":[{"n":"AB"},{"n":5},{"m":"x"},{"n":"É\"Q"}]}"#])
    );
}

#[test]
fn other_types_are_errors() {
    let table = Table::new("t").column(Column::new("n", DataType::Int64));
    let input = batch(
        &table,
        vec![Arc::new(arrow_array::Int64Array::from(vec![1]))],
    );
    let mut plugin = basic(json!([{"kind": "lowercase", "columns": ["n"]}]));
    let error = run_error(&mut plugin, input.clone());
    assert!(
        error.ends_with("column n is not a string or JSON column"),
        "{error}"
    );
    let mut plugin = basic(json!([{"kind": "lowercase", "columns": ["n.a"]}]));
    let error = run_error(&mut plugin, input);
    assert!(error.ends_with("column n is not a JSON column"), "{error}");
}

/// Go maps one character to one: `ß` stays, `İ` lowercases to `i`.
#[test]
fn case_mapping_is_gos() {
    use crate::case::go_case;
    assert_eq!(go_case("straße", true), "STRAßE");
    assert_eq!(go_case("İSTANBUL", false), "istanbul");
    assert_eq!(go_case("ᾳ", true), "ᾼ");
    assert_eq!(go_case("ΣΑΣ", false), "σασ");
    assert_eq!(go_case("ﬁ", true), "ﬁ");
}
