//! remove_columns, add_column, add_current_timestamp_column, rename_column,
//! change_table_names and add_primary_keys.

use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::types::TimestampMicrosecondType;
use arrow_schema::TimeUnit;
use quarry_sdk::metadata;

use super::*;

/// CloudQuery's `TestRemoveColumns`.
#[test]
fn remove_columns_drops_columns_and_json_paths() {
    let mut plugin = basic(json!([
        {"kind": "remove_columns", "columns": ["col1", "col3.foo.bar.0", "col3.hello", "missing"]}
    ]));
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(names(&out.schema()), ["col2", "col3"]);
    assert_eq!(
        texts(&out, "col3"),
        some(&[
            r#"{"foo":{"bar":["b","c"]}}"#,
            r#"{"foo":{"bar":["e","f"]}}"#
        ])
    );
    // The JSON column keeps its field (and so its extension type).
    assert_eq!(out.schema().field(1), cq_record().schema().field(2));
}

/// CloudQuery's `TestRemoveNestedColumnsWithGjsonSyntax` and
/// `TestRemoveNestedArrayWithGjsonSyntax` (whose input is spaced: the spacing stays, as with
/// sjson), with their expected values before CloudQuery's key sorting.
#[test]
fn remove_columns_deletes_through_every_array_element() {
    let table = Table::new("t").column(json_field("doc"));
    let input = batch(
        &table,
        vec![binary(&[
            Some(
                r#"{"top_foo":[{"foo":"baz0","keep":"value0"},{"foo":"baz1","keep":"value1"},{"foo":"baz2","keep":"value2"}],"other":"data"}"#,
            ),
            Some(
                r#"[{"env": [{"name": "AWS_ACCESS_KEY_ID", "value": "test"}, {"name": "AWS_SECRET_KEY", "value": "secret"}]}, {"env": [{"name": "DB_PASSWORD", "value": "password"}]}]"#,
            ),
            None,
            Some("not json"),
        ])],
    );
    let mut plugin = basic(json!([
        {"kind": "remove_columns", "columns": ["doc.top_foo.#.foo", "doc.#.env.#.value"]}
    ]));
    let out = run_one(&mut plugin, input);
    assert_eq!(
        texts(&out, "doc"),
        vec![
            Some(
                r#"{"top_foo":[{"keep":"value0"},{"keep":"value1"},{"keep":"value2"}],"other":"data"}"#
                    .to_string()
            ),
            Some(
                r#"[{"env": [{"name": "AWS_ACCESS_KEY_ID"}, {"name": "AWS_SECRET_KEY"}]}, {"env": [{"name": "DB_PASSWORD"}]}]"#
                    .to_string()
            ),
            None,
            Some("not json".to_string()),
        ]
    );
}

#[test]
fn remove_columns_refuses_to_remove_every_column_and_paths_into_other_types() {
    let mut plugin = basic(json!([
        {"kind": "remove_columns", "columns": ["col1", "col2", "col3"]}
    ]));
    let error = run_error(&mut plugin, cq_record());
    assert!(error.ends_with("cannot remove all columns"), "{error}");

    let mut plugin = basic(json!([{"kind": "remove_columns", "columns": ["col1.x"]}]));
    let error = run_error(&mut plugin, cq_record());
    assert!(
        error.ends_with("column col1 is not a JSON column"),
        "{error}"
    );
}

/// CloudQuery's `TestAddLiteralStringColumn`.
#[test]
fn add_column_appends_a_non_nullable_utf8_column() {
    let mut plugin = basic(json!([{"kind": "add_column", "name": "col4", "value": "literal"}]));
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(names(&out.schema()), ["col1", "col2", "col3", "col4"]);
    assert_eq!(
        out.schema().field(3),
        &Field::new("col4", DataType::Utf8, false)
    );
    assert_eq!(strings(&out, "col4"), some(&["literal", "literal"]));
    assert_eq!(out.schema().metadata(), cq_record().schema().metadata());
}

/// CloudQuery's `TestAddTimestampColumn`: the wall clock, once per batch.
#[test]
fn add_current_timestamp_column_appends_now_in_utc_microseconds() {
    let micros = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or_default()
    };
    let mut plugin = basic(json!([{"kind": "add_current_timestamp_column", "name": "col4"}]));
    let before = micros();
    let out = run_one(&mut plugin, cq_record());
    let after = micros();
    let field = out.schema().field(3).clone();
    assert_eq!(
        field,
        Field::new(
            "col4",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true
        )
    );
    let values = out.column(3).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(values.value(0), values.value(1));
    assert!((before..=after).contains(&values.value(0)));
}

/// CloudQuery's `TestRenameColumn`, and the field keeps its type, nullability and metadata.
#[test]
fn rename_column_renames_every_field_of_that_name() {
    let table = Table::new("t")
        .column(Column::new("id", DataType::Int64).primary_key())
        .column(Column::new("other", DataType::Utf8));
    let input = batch(
        &table,
        vec![
            Arc::new(arrow_array::Int64Array::from(vec![1])),
            utf8(&[Some("x")]),
        ],
    );
    let mut plugin = basic(json!([
        {"kind": "rename_column", "name": "id", "value": "identifier"},
        {"kind": "rename_column", "name": "absent", "value": "nothing"}
    ]));
    let out = run_one(&mut plugin, input.clone());
    assert_eq!(names(&out.schema()), ["identifier", "other"]);
    assert_eq!(
        out.schema().field(0),
        &input.schema().field(0).clone().with_name("identifier")
    );
    assert_eq!(out.columns(), input.columns());
}

/// CloudQuery's `TestChangeTableName`, Go's spellings of the action, and a later
/// transformation that matches the new name (and not the old).
#[test]
fn change_table_names_renders_the_template_and_later_entries_see_the_new_name() {
    let mut plugin = basic(json!([
        {"kind": "change_table_names", "tables": ["testTable"], "new_table_name_template": "cq_sync_{{.OldName}}"},
        {"kind": "add_column", "tables": ["testTable"], "name": "old", "value": "x"},
        {"kind": "add_column", "tables": ["cq_sync_*"], "name": "new", "value": "y"}
    ]));
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(
        out.schema().metadata().get(metadata::TABLE_NAME),
        Some(&"cq_sync_testTable".to_string())
    );
    assert_eq!(names(&out.schema()), ["col1", "col2", "col3", "new"]);

    for (template, expected) in [
        ("{{ .OldName }}_v2", "testTable_v2"),
        ("pre  {{- .OldName -}}  post", "pretestTablepost"),
        ("{{/* a comment */}}x_{{.OldName}}", "x_testTable"),
        ("}} {{.OldName}}", "}} testTable"),
    ] {
        let mut plugin = basic(json!([
            {"kind": "change_table_names", "new_table_name_template": template}
        ]));
        let out = run_one(&mut plugin, cq_record());
        assert_eq!(
            out.schema().metadata().get(metadata::TABLE_NAME),
            Some(&expected.to_string()),
            "{template}"
        );
    }
}

/// add_primary_keys sets the flag, keeps nullability, and clears `unique` everywhere.
#[test]
fn add_primary_keys_marks_columns_and_clears_unique() {
    let table = Table::new("items")
        .column(
            Column::new("id", DataType::Int64)
                .unique()
                .describe("the id"),
        )
        .column(Column::new("name", DataType::Utf8).unique());
    let input = batch(
        &table,
        vec![
            Arc::new(arrow_array::Int64Array::from(vec![1])),
            utf8(&[Some("x")]),
        ],
    );
    let mut plugin = basic(json!([{"kind": "add_primary_keys", "columns": ["id"]}]));
    let out = run_one(&mut plugin, input);
    let id = out.schema().field(0).clone();
    assert!(id.is_nullable());
    assert_eq!(
        id.metadata().get(metadata::PRIMARY_KEY),
        Some(&"true".to_string())
    );
    assert_eq!(id.metadata().get(metadata::UNIQUE), None);
    assert_eq!(
        id.metadata().get(metadata::COLUMN_DESCRIPTION),
        Some(&"the id".to_string())
    );
    let name = out.schema().field(1).clone();
    assert_eq!(name.metadata().get(metadata::UNIQUE), None);
    assert_eq!(name.metadata().get(metadata::PRIMARY_KEY), None);

    let mut plugin = basic(json!([{"kind": "add_primary_keys", "columns": ["nope"]}]));
    let error = run_error(&mut plugin, cq_record());
    assert!(
        error.ends_with("new primary key column: nope not found in: testTable"),
        "{error}"
    );
}
