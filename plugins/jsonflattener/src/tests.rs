//! The transformer end to end on Arrow batches: names, order, types and values of the new
//! columns, key matching, errors, table selection, and schemas equal to the batches'.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use quarry_sdk::{Column, Extension, Plugin, Transformer};
use serde_json::json;

use super::{JsonFlattener, Spec};

/// A `json` extension field, with a type schema if given.
fn json_field(name: &str, type_schema: Option<&str>) -> Field {
    let column = Column::extension(name, Extension::Json);
    match type_schema {
        Some(schema) => column.type_schema(schema).field(),
        None => column.field(),
    }
}

/// A `json` column's storage: one JSON text (or null) a row.
fn json_values(rows: &[Option<&str>]) -> ArrayRef {
    let rows: Vec<Option<&[u8]>> = rows.iter().map(|r| r.map(str::as_bytes)).collect();
    Arc::new(BinaryArray::from_opt_vec(rows))
}

fn batch_of(table: Option<&str>, columns: Vec<(Field, ArrayRef)>) -> RecordBatch {
    let metadata: HashMap<String, String> = table
        .map(|t| HashMap::from([("cq:table_name".to_string(), t.to_string())]))
        .unwrap_or_default();
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, metadata)),
        arrays,
    )
    .expect("a valid test batch")
}

/// A batch of table `items` with one JSON column `col` of the given type schema and rows.
fn one_column(type_schema: &str, rows: &[Option<&str>]) -> RecordBatch {
    batch_of(
        Some("items"),
        vec![(json_field("col", Some(type_schema)), json_values(rows))],
    )
}

fn plugin(tables: Option<&[&str]>) -> JsonFlattener {
    let tables = tables.map(|t| t.iter().map(|s| s.to_string()).collect());
    JsonFlattener::new(Spec { tables }).expect("the spec is valid")
}

/// Flattens `batch` with every table selected, and checks that `transform_schema` gives the
/// schema the batch came out with.
fn flatten(batch: RecordBatch) -> RecordBatch {
    flatten_with(&mut plugin(None), batch)
}

fn flatten_with(plugin: &mut JsonFlattener, batch: RecordBatch) -> RecordBatch {
    let schema = plugin
        .transform_schema(batch.schema())
        .expect("the schema transforms");
    let mut out = plugin.transform(batch).expect("the batch transforms");
    assert_eq!(out.len(), 1, "one batch in, one batch out");
    let out = out.remove(0);
    assert_eq!(
        out.schema(),
        schema,
        "transform_schema == the batch's schema"
    );
    out
}

fn error_of(batch: RecordBatch) -> String {
    let mut plugin = plugin(None);
    let schema_error = plugin
        .transform_schema(batch.schema())
        .map(|_| ())
        .err()
        .map(|e| e.message);
    let batch_error = plugin
        .transform(batch)
        .expect_err("the batch is refused")
        .message;
    // A schema error is one any batch of the table would hit; row errors come from rows only.
    if let Some(schema_error) = schema_error {
        assert_eq!(schema_error, batch_error);
    }
    batch_error
}

fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = batch.column_by_name(name).expect("the column exists");
    match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect(),
        DataType::Binary => column
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
            .collect(),
        other => panic!("{name} is {other}, not text"),
    }
}

#[test]
fn new_columns_follow_the_existing_ones_by_column_then_key() {
    let batch = batch_of(
        Some("items"),
        vec![
            (
                Field::new("id", DataType::Int64, false),
                Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            ),
            (
                json_field("zeta", Some(r#"{"b": "utf8", "a": "int64"}"#)),
                json_values(&[Some(r#"{"a": 1, "b": "x"}"#)]),
            ),
            (
                json_field(
                    "alpha",
                    Some(
                        r#"{"subColumnOne": "utf8", "HTTPServer": "utf8", "fooBar": "bool", "foo_bar": "bool"}"#,
                    ),
                ),
                json_values(&[Some("{}")]),
            ),
            (json_field("plain", None), json_values(&[Some("{}")])),
            (
                Field::new("alpha__sub_column_one", DataType::Utf8, true),
                Arc::new(StringArray::from(vec!["taken"])) as ArrayRef,
            ),
        ],
    );
    let input = batch.schema();
    let out = flatten(batch);
    assert_eq!(
        names(&out),
        [
            "id",
            "zeta",
            "alpha",
            "plain",
            "alpha__sub_column_one",
            // Keys sorted (byte order), snake_cased as CloudQuery's caser does.
            "alpha__https_erver",
            "alpha__foo_bar",
            // `foo_bar` snake-cases to the name `fooBar` took.
            "alpha__foo_bar_",
            // An existing column took this name too (CloudQuery would duplicate it).
            "alpha__sub_column_one_",
            "zeta__a",
            "zeta__b",
        ]
    );
    // The existing fields, metadata included, are untouched.
    for (i, field) in input.fields().iter().enumerate() {
        assert_eq!(out.schema().field(i), field.as_ref());
    }
    assert_eq!(out.schema().metadata(), input.metadata());
    for field in out.schema().fields().iter().skip(5) {
        assert!(field.is_nullable(), "{field}");
        assert!(field.metadata().is_empty(), "{field}");
    }
    assert_eq!(
        out.column_by_name("zeta__a")
            .expect("zeta__a")
            .as_primitive::<Int64Type>()
            .value(0),
        1
    );
    assert_eq!(strings(&out, "zeta__b"), [Some("x".to_string())]);
}

#[test]
fn every_type_reads_its_own_json_type_and_nothing_else() {
    let type_schema = json!({
        "s": "utf8", "i": "int64", "f": "float64", "b": "bool", "j": "json", "u": "uuid",
        "t": "timestamp[us, tz=UTC]", "n": {"x": "utf8"}, "l": ["int64"], "a": "any",
        "bin": "binary", "utf8": "int64",
    })
    .to_string();
    let good = json!({
        "s": "text", "i": -2.9, "f": 1.5, "b": true, "j": {"z": [1, null], "a": "<&>"},
        "u": "123e4567-e89b-12d3-a456-426614174000", "t": "2024-01-02T03:04:05.006Z",
        "n": {"x": "y"}, "l": [1, 2], "a": 3, "bin": "AQI=", "utf8": 5,
    })
    .to_string();
    let wrong = json!({
        "s": 1, "i": "2", "f": "1.5", "b": "true", "u": "test", "t": "yesterday",
        "n": "scalar", "l": 1.0, "a": "x",
    })
    .to_string();
    let more = json!({
        "i": 9_007_199_254_740_993_i64, "f": 7, "j": "text", "t": "2024-01-02 03:04:05",
        "u": "123E4567E89B12D3A456426614174000",
    })
    .to_string();
    let batch = one_column(
        &type_schema,
        &[
            Some(&good),
            Some(&wrong),
            None,
            Some("{}"),
            Some("null"),
            Some(r#"{"s": null, "j": null, "i": null}"#),
            Some(&more),
        ],
    );
    let out = flatten(batch);
    assert_eq!(
        names(&out),
        [
            "col", "col__a", "col__b", "col__bin", "col__f", "col__i", "col__j", "col__l",
            "col__n", "col__s", "col__t", "col__u",
        ]
    );
    let schema = out.schema();
    let type_of = |name: &str| {
        schema
            .field_with_name(name)
            .expect("the field exists")
            .clone()
    };
    assert_eq!(
        type_of("col__s"),
        Field::new("col__s", DataType::Utf8, true)
    );
    assert_eq!(
        type_of("col__i"),
        Field::new("col__i", DataType::Int64, true)
    );
    assert_eq!(
        type_of("col__f"),
        Field::new("col__f", DataType::Float64, true)
    );
    assert_eq!(
        type_of("col__b"),
        Field::new("col__b", DataType::Boolean, true)
    );
    assert_eq!(
        type_of("col__t"),
        Field::new(
            "col__t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true
        )
    );
    for name in ["col__j", "col__n", "col__l", "col__a", "col__bin"] {
        assert_eq!(
            type_of(name),
            Column::extension(name, Extension::Json).field()
        );
    }
    assert_eq!(
        type_of("col__u"),
        Column::extension("col__u", Extension::Uuid).field()
    );

    let text = |v: &[Option<&str>]| -> Vec<Option<String>> {
        v.iter().map(|s| s.map(str::to_string)).collect()
    };
    assert_eq!(
        strings(&out, "col__s"),
        text(&[Some("text"), None, None, None, None, None, None])
    );
    let ints: Vec<Option<i64>> = out
        .column_by_name("col__i")
        .expect("col__i")
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    assert_eq!(
        ints,
        [
            Some(-2),
            None,
            None,
            None,
            None,
            None,
            Some(9_007_199_254_740_993)
        ]
    );
    let floats: Vec<Option<f64>> = out
        .column_by_name("col__f")
        .expect("col__f")
        .as_primitive::<Float64Type>()
        .iter()
        .collect();
    assert_eq!(floats, [Some(1.5), None, None, None, None, None, Some(7.0)]);
    let bools: Vec<Option<bool>> = out
        .column_by_name("col__b")
        .expect("col__b")
        .as_boolean()
        .iter()
        .collect();
    assert_eq!(bools, [Some(true), None, None, None, None, None, None]);
    let times: Vec<Option<i64>> = out
        .column_by_name("col__t")
        .expect("col__t")
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    assert_eq!(
        times,
        [
            Some(1_704_164_645_006_000),
            None,
            None,
            None,
            None,
            None,
            Some(1_704_164_645_000_000)
        ]
    );
    let uuid = out
        .column_by_name("col__u")
        .expect("col__u")
        .as_fixed_size_binary();
    let want: [u8; 16] = [
        0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40,
        0x00,
    ];
    let uuids: Vec<Option<&[u8]>> = uuid.iter().collect();
    assert_eq!(
        uuids,
        [
            Some(&want[..]),
            None,
            None,
            None,
            None,
            None,
            Some(&want[..])
        ]
    );
    // JSON: any value, re-serialised compactly with sorted keys; a missing key or JSON null is
    // null, not the text `null`.
    assert_eq!(
        strings(&out, "col__j"),
        text(&[
            Some(r#"{"a":"<&>","z":[1,null]}"#),
            None,
            None,
            None,
            None,
            None,
            Some(r#""text""#)
        ])
    );
    assert_eq!(
        strings(&out, "col__n"),
        text(&[
            Some(r#"{"x":"y"}"#),
            Some(r#""scalar""#),
            None,
            None,
            None,
            None,
            None
        ])
    );
    assert_eq!(
        strings(&out, "col__l"),
        text(&[Some("[1,2]"), Some("1"), None, None, None, None, None])
    );
    assert_eq!(
        strings(&out, "col__a"),
        text(&[Some("3"), Some(r#""x""#), None, None, None, None, None])
    );
    assert_eq!(
        strings(&out, "col__bin"),
        text(&[Some(r#""AQI=""#), None, None, None, None, None, None])
    );
    // The JSON column itself is kept as it was.
    assert_eq!(strings(&out, "col")[0].as_deref(), Some(good.as_str()));
}

#[test]
fn camel_case_data_matches_a_snake_case_schema() {
    // CloudQuery's TestDifferentCasingWorksEvenWhenFirstRowIsNull: null rows match no key, so
    // the choice is made again on the next row.
    let batch = one_column(
        r#"{"subcolumn_one": "utf8"}"#,
        &[
            None,
            Some("{}"),
            Some(r#"{"subcolumnOne": "value", "unknownColumn": 2}"#),
            Some(r#"{"subcolumn_one": "as is"}"#),
        ],
    );
    let out = flatten(batch);
    assert_eq!(names(&out), ["col", "col__subcolumn_one"]);
    assert_eq!(
        strings(&out, "col__subcolumn_one"),
        [None, None, Some("value".into()), Some("as is".into())]
    );

    // A tie goes to the keys as they are: `cD` matches as is, `aB` only snake_cased.
    let batch = one_column(
        r#"{"a_b": "utf8", "cD": "utf8"}"#,
        &[Some(r#"{"aB": "1", "cD": "2"}"#), Some(r#"{"aB": "3"}"#)],
    );
    let out = flatten(batch);
    assert_eq!(names(&out), ["col", "col__a_b", "col__c_d"]);
    assert_eq!(strings(&out, "col__a_b"), [None, Some("3".into())]);
    assert_eq!(strings(&out, "col__c_d"), [Some("2".into()), None]);
}

#[test]
fn an_unsupported_type_is_an_error_naming_key_table_and_column() {
    let error = error_of(one_column(
        r#"{"ok": "utf8", "when": "date32"}"#,
        &[Some("{}")],
    ));
    assert!(
        error.starts_with(
            "unsupported type for column [when] on original column [items.col]: [date32]"
        ),
        "{error}"
    );
    let error = error_of(one_column(r#"{"at": "timestamp[us]"}"#, &[]));
    assert!(error.contains("[timestamp[us]]"), "{error}");
}

#[test]
fn a_row_that_is_not_an_object_is_an_error() {
    for (row, kind) in [("[1, 2]", "array"), ("\"text\"", "string"), ("3", "number")] {
        let error = error_of(one_column(r#"{"a": "utf8"}"#, &[Some("{}"), Some(row)]));
        assert!(
            error.starts_with(&format!("expected JSON column for column col, got {kind}")),
            "{error}"
        );
    }
    let error = error_of(one_column(r#"{"a": "utf8"}"#, &[Some("{oops")]));
    assert!(
        error.contains("column col, row 0: the value is not valid JSON"),
        "{error}"
    );
}

#[test]
fn a_type_schema_on_a_column_that_is_not_json_is_an_error() {
    let field = Field::new("col", DataType::Utf8, true).with_metadata(HashMap::from([(
        "cq:extension:type_schema".to_string(),
        r#"{"a": "utf8"}"#.to_string(),
    )]));
    let batch = batch_of(
        Some("items"),
        vec![(field, Arc::new(StringArray::from(vec!["{}"])) as ArrayRef)],
    );
    let error = error_of(batch);
    assert!(
        error.starts_with("expected JSONArray column, got Utf8"),
        "{error}"
    );
}

#[test]
fn unusable_type_schemas_are_skipped() {
    for type_schema in ["not json", r#"["utf8"]"#, r#""utf8""#, ""] {
        let batch = one_column(type_schema, &[Some(r#"{"a": 1}"#)]);
        let schema = batch.schema();
        let out = flatten(batch);
        assert_eq!(out.schema(), schema, "{type_schema:?}");
    }
    // A schema of only a map's key type (`utf8`) adds no column.
    let out = flatten(one_column(r#"{"utf8": "int64"}"#, &[Some(r#"{"k": 1}"#)]));
    assert_eq!(names(&out), ["col"]);
}

#[test]
fn batches_without_a_typed_json_column_and_empty_batches_pass() {
    let batch = batch_of(
        Some("items"),
        vec![(
            json_field("plain", None),
            json_values(&[Some(r#"{"a": 1}"#)]),
        )],
    );
    let out = flatten(batch.clone());
    assert_eq!(out, batch);

    // No rows: forwarded, with the flattened schema.
    let out = flatten(one_column(r#"{"a": "int64"}"#, &[]));
    assert_eq!(out.num_rows(), 0);
    assert_eq!(names(&out), ["col", "col__a"]);
}

#[test]
fn tables_selects_by_glob_and_an_empty_list_selects_none() {
    let batch = || one_column(r#"{"a": "utf8"}"#, &[Some(r#"{"a": "x"}"#)]);
    let columns = |plugin: &mut JsonFlattener| flatten_with(plugin, batch()).num_columns();
    assert_eq!(columns(&mut plugin(None)), 2, "absent: every table");
    assert_eq!(columns(&mut plugin(Some(&[]))), 1, "empty: none");
    assert_eq!(columns(&mut plugin(Some(&["it*"]))), 2);
    assert_eq!(columns(&mut plugin(Some(&["other", "*ems"]))), 2);
    assert_eq!(columns(&mut plugin(Some(&["item"]))), 1);
    assert_eq!(columns(&mut plugin(Some(&["ITEMS"]))), 1, "case-sensitive");
    assert_eq!(
        columns(&mut plugin(Some(&["it?ms"]))),
        1,
        "`?` is no wildcard"
    );

    let nameless = batch_of(
        None,
        vec![(
            json_field("col", Some(r#"{"a": "utf8"}"#)),
            json_values(&[]),
        )],
    );
    for tables in [None, Some(&[][..])] {
        let error = plugin(tables)
            .transform(nameless.clone())
            .expect_err("a batch without a table name is refused");
        assert!(
            error
                .message
                .starts_with("table name not found in record's metadata"),
            "{error}"
        );
        assert!(plugin(tables).transform_schema(nameless.schema()).is_err());
    }
}

#[test]
fn the_spec_tells_an_absent_list_from_an_empty_one() {
    let spec: Spec = serde_json::from_str("{}").expect("an empty spec");
    assert_eq!(spec.tables, None);
    let spec: Spec = serde_json::from_str(r#"{"tables": []}"#).expect("an empty list");
    assert_eq!(spec.tables, Some(vec![]));
    assert!(serde_json::from_str::<Spec>(r#"{"table": ["a"]}"#).is_err());
}
