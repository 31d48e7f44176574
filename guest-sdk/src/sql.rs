//! For plugins that speak SQL (PostgreSQL, DuckDB, MySQL): quoting, the `where` clause of a
//! delete-record request, connection URLs' %-escapes and the key ranges a large table is read
//! in. Standard SQL quoting: `"identifiers"`, `'strings'`.

use arrow_array::RecordBatch;
use arrow_schema::DataType;

use crate::{Column, DeleteRequest, Error, Grouping, Result, Table};

/// `"name"`, with embedded quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with embedded quotes doubled (standard-conforming strings).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `CREATE TABLE IF NOT EXISTS <name> (...)`: each column with the type `column_type` gives it
/// and `NOT NULL` where it holds no nulls, then the primary key. `name` is already quoted.
pub fn create_table(
    name: &str,
    table: &Table,
    column_type: impl Fn(&Column) -> Result<String>,
) -> Result<String> {
    let mut parts = Vec::new();
    for c in &table.columns {
        let not_null = if c.nullable { "" } else { " NOT NULL" };
        parts.push(format!("{} {}{not_null}", ident(&c.name), column_type(c)?));
    }
    let keys = table.primary_keys();
    if !keys.is_empty() {
        let keys: Vec<String> = keys.iter().map(|k| ident(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", keys.join(", ")));
    }
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {name} ({})",
        parts.join(", ")
    ))
}

/// ` where (...) and (...)` for a delete-record request: each group's `column = value`
/// predicates joined by the group's operator; empty when the request has no groups.
pub fn delete_filter(request: &DeleteRequest) -> Result<String> {
    let mut groups = Vec::new();
    for group in &request.where_clause {
        let mut predicates = Vec::new();
        for p in &group.predicates {
            let value = value_literal(&p.value)?;
            predicates.push(if value == "null" {
                format!("{} is null", ident(&p.column))
            } else {
                format!("{} = {value}", ident(&p.column))
            });
        }
        let op = match group.grouping {
            Grouping::And => " and ",
            Grouping::Or => " or ",
        };
        groups.push(format!("({})", predicates.join(op)));
    }
    Ok(if groups.is_empty() {
        String::new()
    } else {
        format!(" where {}", groups.join(" and "))
    })
}

/// The one value of a delete-record predicate as an SQL literal.
pub fn value_literal(value: &RecordBatch) -> Result<String> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    let a = value.column(0);
    if a.is_null(0) {
        return Ok("null".into());
    }
    Ok(match a.data_type() {
        DataType::Boolean => a.as_boolean().value(0).to_string(),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(0).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(0).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(0).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(0).to_string(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(0).to_string(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(0).to_string(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(0).to_string(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(0).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(0).to_string(),
        DataType::Utf8 => literal(a.as_string::<i32>().value(0)),
        DataType::LargeUtf8 => literal(a.as_string::<i64>().value(0)),
        other => {
            return Err(Error::not_supported(format!(
                "delete-record on a {other} value (column `{}`) is not supported yet",
                value.schema().field(0).name()
            )));
        }
    })
}

/// `%XX` escapes decoded (a password with `@` or `/` in a connection URL); the error names the
/// text that is not an escape or not UTF-8.
pub fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    let escape: String = text[i..].chars().take(3).collect();
                    format!("`{escape}` in `{text}` is not a %-escape")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` is not UTF-8 once decoded"))
}

/// A range of an integer key: `from <= key < to`, either end open.
pub type KeyRange = (Option<i64>, Option<i64>);

/// How many key ranges a table of about `estimate` rows is read in: as many as `concurrency`
/// allows and the rows call for (`split_rows` each at least), and however high `concurrency` is
/// set (CloudQuery's defaults are in the thousands), no more than 32 connections per table.
pub fn range_count(estimate: f64, split_rows: u64, concurrency: usize) -> usize {
    let wanted = (estimate / split_rows.max(1) as f64).floor();
    // A float to integer cast saturates (and a NaN estimate is 0).
    (wanted as usize).min(concurrency).clamp(1, 32)
}

/// `count` ranges (`from <= key < to`) cut evenly between a key's smallest and largest values
/// (fewer if there are fewer values), the first and last open-ended so rows written meanwhile
/// are not missed.
pub fn key_ranges(low: i64, high: i64, count: usize) -> Vec<KeyRange> {
    let span = (i128::from(high) - i128::from(low) + 1).max(1);
    let count = count.clamp(1, usize::try_from(span).unwrap_or(usize::MAX));
    let mut ranges = Vec::with_capacity(count);
    let mut from = None;
    for i in 1..count {
        let cut = i128::from(low) + span * i as i128 / count as i128;
        let cut = i64::try_from(cut).expect("between low and high");
        ranges.push((from, Some(cut)));
        from = Some(cut);
    }
    ranges.push((from, None));
    ranges
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn a_delete_request_becomes_a_where_clause_with_quoted_values() {
        let request =
            DeleteRequest::equal("t", "na\"me", Arc::new(StringArray::from(vec!["o'k"]))).unwrap();
        assert_eq!(
            delete_filter(&request).unwrap(),
            " where (\"na\"\"me\" = 'o''k')"
        );
        let request =
            DeleteRequest::equal("t", "id", Arc::new(Int64Array::from(vec![None]))).unwrap();
        assert_eq!(delete_filter(&request).unwrap(), " where (\"id\" is null)");
    }

    #[test]
    fn escapes_decode_and_bad_ones_are_named() {
        assert_eq!(percent_decode("p%40ss%2Fw%C3%B6rd").unwrap(), "p@ss/wörd");
        assert!(percent_decode("50%").unwrap_err().contains("`%` in `50%`"));
        assert!(percent_decode("%zz").unwrap_err().contains("`%zz`"));
        assert!(percent_decode("%ff").unwrap_err().contains("not UTF-8"));
        assert!(percent_decode("a%中b").unwrap_err().contains("`%中b`"));
    }

    #[test]
    fn key_ranges_cover_every_key_once() {
        assert_eq!(
            key_ranges(-19_993, 120_000, 3),
            [
                (None, Some(26_671)),
                (Some(26_671), Some(73_336)),
                (Some(73_336), None)
            ]
        );
        assert_eq!(key_ranges(5, 6, 4), [(None, Some(6)), (Some(6), None)]);
        assert_eq!(key_ranges(7, 7, 4), [(None, None)]);
        assert_eq!(key_ranges(i64::MIN, i64::MAX, 2).len(), 2);
        assert_eq!(range_count(20_000.0, 4_000, 3), 3);
        assert_eq!(range_count(7_999.0, 4_000, 8), 1);
        assert_eq!(range_count(1e12, 1, 1000), 32);
        assert_eq!(range_count(f64::NAN, 1, 4), 1);
    }
}
