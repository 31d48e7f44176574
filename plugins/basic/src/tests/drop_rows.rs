//! drop_rows (CloudQuery's `TestDropRow*`) and the text values are compared as.

use arrow_array::types::*;
use arrow_array::{
    BooleanArray, Date64Array, Decimal128Array, FixedSizeBinaryArray, Float32Array, Float64Array,
    Int64Array, PrimitiveArray, UInt64Array,
};
use arrow_schema::TimeUnit;

use super::*;

#[test]
fn drop_rows_drops_rows_whose_value_matches() {
    let mut plugin = basic(json!([{"kind": "drop_rows", "columns": ["col1"], "value": "val1"}]));
    let out = run_one(&mut plugin, cq_record());
    assert_eq!(out.num_rows(), 1);
    assert_eq!(strings(&out, "col1"), some(&["val2"]));
    assert_eq!(
        texts(&out, "col3"),
        some(&[r#"{"foo":{"bar":["d","e","f"]}}"#])
    );
}

/// Any listed column matching drops the row; without a value, nulls match.
#[test]
fn drop_rows_ors_columns_and_matches_nulls_without_a_value() {
    let table = Table::new("t")
        .column(Column::new("a", DataType::Utf8))
        .column(Column::new("b", DataType::Utf8));
    let input = batch(
        &table,
        vec![
            utf8(&[Some("x"), None, Some("y"), Some("z")]),
            utf8(&[Some("1"), Some("2"), None, Some("x")]),
        ],
    );
    let mut plugin = basic(json!([{"kind": "drop_rows", "columns": ["a", "b"]}]));
    let out = run_one(&mut plugin, input.clone());
    assert_eq!(strings(&out, "a"), some(&["x", "z"]));
    let mut plugin = basic(json!([{"kind": "drop_rows", "columns": ["a", "b"], "value": null}]));
    assert_eq!(run_one(&mut plugin, input.clone()).num_rows(), 2);
    let mut plugin = basic(json!([{"kind": "drop_rows", "columns": ["a", "b"], "value": "x"}]));
    let out = run_one(&mut plugin, input);
    assert_eq!(strings(&out, "a"), vec![None, Some("y".to_string())]);
}

/// A batch with every row dropped is not passed on.
#[test]
fn a_batch_with_every_row_dropped_gives_no_batch() {
    let mut plugin = basic(json!([
        {"kind": "drop_rows", "columns": ["col2"], "value": "val3"},
        {"kind": "drop_rows", "columns": ["col2"], "value": "val4"}
    ]));
    assert!(run(&mut plugin, cq_record()).is_empty());
}

/// The values of `TestComprehensiveDropRow`, and the text of other types.
#[test]
fn values_compare_as_arrow_go_writes_them() {
    let ts = |unit: TimeUnit, v: i64| -> ArrayRef {
        match unit {
            TimeUnit::Nanosecond => Arc::new(
                PrimitiveArray::<TimestampNanosecondType>::from(vec![v]).with_timezone("UTC"),
            ),
            TimeUnit::Microsecond => Arc::new(
                PrimitiveArray::<TimestampMicrosecondType>::from(vec![v]).with_timezone("UTC"),
            ),
            TimeUnit::Millisecond => {
                Arc::new(PrimitiveArray::<TimestampMillisecondType>::from(vec![v]))
            }
            TimeUnit::Second => Arc::new(
                PrimitiveArray::<TimestampSecondType>::from(vec![v]).with_timezone("+05:30"),
            ),
        }
    };
    let uuid = FixedSizeBinaryArray::try_from_iter(
        [[
            0x38u8, 0x31, 0xf2, 0x6b, 0x7a, 0x87, 0x57, 0x7a, 0xba, 0x61, 0x77, 0xc8, 0x4f, 0x26,
            0x29, 0x22,
        ]]
        .into_iter(),
    )
    .expect("uuid");
    let cases: Vec<(Column, ArrayRef, &str)> = vec![
        (
            Column::new("u64", DataType::UInt64),
            Arc::new(UInt64Array::from(vec![1492571184685610638])),
            "1492571184685610638",
        ),
        (
            Column::new("i64", DataType::Int64),
            Arc::new(Int64Array::from(vec![-42])),
            "-42",
        ),
        (
            Column::new("f64", DataType::Float64),
            Arc::new(Float64Array::from(vec![1234567.0])),
            "1.234567e+06",
        ),
        (
            Column::new("f64b", DataType::Float64),
            Arc::new(Float64Array::from(vec![0.1])),
            "0.1",
        ),
        (
            Column::new("f32", DataType::Float32),
            Arc::new(Float32Array::from(vec![0.1f32])),
            "0.1",
        ),
        (
            Column::new("bool", DataType::Boolean),
            Arc::new(BooleanArray::from(vec![true])),
            "true",
        ),
        (
            Column::new("date64", DataType::Date64),
            Arc::new(Date64Array::from(vec![1_686_528_000_000])),
            "2023-06-12",
        ),
        (
            Column::new(
                "timestamp_ns",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            ),
            ts(TimeUnit::Nanosecond, 1_751_020_835_000_914_319),
            "2025-06-27T10:40:35.000914319Z",
        ),
        (
            Column::new(
                "timestamp_us",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
            ts(TimeUnit::Microsecond, 1_751_020_835_000_914),
            "2025-06-27T10:40:35.000914Z",
        ),
        (
            Column::new(
                "timestamp_ms",
                DataType::Timestamp(TimeUnit::Millisecond, None),
            ),
            ts(TimeUnit::Millisecond, 1_751_020_835_000),
            "2025-06-27T10:40:35Z",
        ),
        (
            Column::new(
                "timestamp_s",
                DataType::Timestamp(TimeUnit::Second, Some("+05:30".into())),
            ),
            ts(TimeUnit::Second, 0),
            "1970-01-01T05:30:00+05:30",
        ),
        (
            Column::extension("uuid", Extension::Uuid),
            Arc::new(uuid),
            "3831f26b-7a87-577a-ba61-77c84f262922",
        ),
        (
            Column::extension("json", Extension::Json),
            binary(&[Some(r#"{"test":["a","b",52011]}"#)]),
            r#"{"test":["a","b",52011]}"#,
        ),
        (
            Column::extension("inet", Extension::Inet),
            binary(&[Some("139.0.16.60/10")]),
            "139.0.16.60/10",
        ),
        (
            Column::extension("mac", Extension::Mac),
            binary(&[Some("A6:AE:92:FB:B5:2C")]),
            "a6:ae:92:fb:b5:2c",
        ),
        (
            Column::new("bin", DataType::Binary),
            binary(&[Some("hi")]),
            "aGk=",
        ),
        (
            Column::new("dec", DataType::Decimal128(10, 2)),
            Arc::new(
                Decimal128Array::from(vec![12345])
                    .with_precision_and_scale(10, 2)
                    .expect("decimal"),
            ),
            "123.45",
        ),
        (
            Column::new("tiny", DataType::Decimal128(5, 5)),
            Arc::new(
                Decimal128Array::from(vec![1])
                    .with_precision_and_scale(5, 5)
                    .expect("decimal"),
            ),
            "1e-05",
        ),
        (
            Column::new("date32", DataType::Date32),
            Arc::new(arrow_array::Date32Array::from(vec![-1])),
            "1969-12-31",
        ),
        (
            Column::new("time", DataType::Time64(TimeUnit::Microsecond)),
            Arc::new(arrow_array::Time64MicrosecondArray::from(vec![
                3_723_000_004,
            ])),
            "01:02:03.000004",
        ),
        (
            Column::new("time_s", DataType::Time32(TimeUnit::Second)),
            Arc::new(arrow_array::Time32SecondArray::from(vec![59])),
            "00:00:59",
        ),
        (
            Column::new("duration", DataType::Duration(TimeUnit::Millisecond)),
            Arc::new(arrow_array::DurationMillisecondArray::from(vec![1500])),
            "1500ms",
        ),
    ];
    for (column, array, text) in cases {
        let name = column.name.clone();
        let table = Table::new("t")
            .column(column)
            .column(Column::new("k", DataType::Utf8));
        let input = batch(&table, vec![array, utf8(&[Some("kept")])]);
        let mut plugin = basic(json!([{"kind": "drop_rows", "columns": [name], "value": text}]));
        assert!(
            run(&mut plugin, input.clone()).is_empty(),
            "{name} did not read as {text}"
        );
        let mut plugin = basic(json!([
            {"kind": "drop_rows", "columns": [name], "value": format!("{text}x")}
        ]));
        assert_eq!(run(&mut plugin, input).len(), 1, "{name}");
    }
}

/// Columns drop_rows cannot read as text are refused when a value is given (nulls still work).
#[test]
fn drop_rows_refuses_lists_with_a_value() {
    let item = Arc::new(Field::new("item", DataType::Int64, true));
    let table = Table::new("t").column(Column::new("l", DataType::List(item.clone())));
    let list = arrow_array::ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1)]),
        None,
    ]);
    let input = batch(&table, vec![Arc::new(list)]);
    let mut plugin = basic(json!([{"kind": "drop_rows", "columns": ["l"], "value": "[1]"}]));
    let error = run_error(&mut plugin, input.clone());
    assert!(
        error.contains(
            "drop_rows cannot compare values of column l (type list<item: int64, nullable>)"
        ),
        "{error}"
    );
    let mut plugin = basic(json!([{"kind": "drop_rows", "columns": ["l"]}]));
    assert_eq!(run_one(&mut plugin, input).num_rows(), 1);
}
