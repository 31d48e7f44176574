//! `uppercase` and `lowercase` (CloudQuery's `ChangeCase`): utf8 columns value by value, a JSON
//! column listed whole as text (keys included), and a path inside a JSON column on the strings
//! it reaches.
//!
//! Go's `strings.ToUpper`/`ToLower` map one character to one character (Unicode's simple case
//! mapping): `ß` stays `ß`, where Rust's `to_uppercase` gives `SS`. [`go_case`] keeps Go's
//! results.
//!
//! Through a `#` path CloudQuery changes nothing (gjson's result there is an array, not a
//! string, and it only re-cases strings); Quarry re-cases each string the path reaches, which
//! is what the entry asks for.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use quarry_sdk::{Error, Result};

use crate::json;
use crate::obfuscate::Storage;
use crate::path::{ColumnRef, JsonPath, Resolved};
use crate::transform::rebuild;

/// `s` upper- or lowercased one character at a time, as Go does.
pub(crate) fn go_case(s: &str, upper: bool) -> String {
    s.chars().map(|c| go_case_char(c, upper)).collect()
}

fn go_case_char(c: char, upper: bool) -> char {
    let mut mapped = if upper {
        CaseIter::Upper(c.to_uppercase())
    } else {
        CaseIter::Lower(c.to_lowercase())
    };
    match (mapped.next(), mapped.next()) {
        (Some(single), None) => single,
        // A mapping to several characters is Unicode's full (special) casing; the simple
        // mapping Go uses is one of these few, or the character itself.
        _ => match (c, upper) {
            ('\u{1F80}'..='\u{1F87}' | '\u{1F90}'..='\u{1F97}' | '\u{1FA0}'..='\u{1FA7}', true) => {
                char::from_u32(c as u32 + 8).unwrap_or(c)
            }
            ('\u{1FB3}', true) => '\u{1FBC}',
            ('\u{1FC3}', true) => '\u{1FCC}',
            ('\u{1FF3}', true) => '\u{1FFC}',
            ('\u{0130}', false) => 'i',
            _ => c,
        },
    }
}

enum CaseIter {
    Upper(std::char::ToUppercase),
    Lower(std::char::ToLowercase),
}

impl Iterator for CaseIter {
    type Item = char;
    fn next(&mut self) -> Option<char> {
        match self {
            CaseIter::Upper(i) => i.next(),
            CaseIter::Lower(i) => i.next(),
        }
    }
}

/// `uppercase` (`upper`) or `lowercase` on the listed columns; names that do not exist are
/// ignored.
pub(crate) fn change_case(
    batch: RecordBatch,
    refs: &[ColumnRef],
    upper: bool,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let resolved = Resolved::new(refs, &schema);
    let mut columns = batch.columns().to_vec();
    for &i in &resolved.whole {
        let field = schema.field(i);
        columns[i] = match Storage::of(field) {
            Storage::Utf8 => {
                let values = columns[i].as_string::<i32>();
                Arc::new(
                    values
                        .iter()
                        .map(|v| v.map(|v| go_case(v, upper)))
                        .collect::<StringArray>(),
                ) as ArrayRef
            }
            Storage::Json => {
                let values = columns[i].as_binary::<i32>();
                Arc::new(
                    values
                        .iter()
                        .map(|v| {
                            v.map(|v| go_case(&String::from_utf8_lossy(v), upper).into_bytes())
                        })
                        .collect::<BinaryArray>(),
                )
            }
            _ => {
                return Err(Error::invalid_spec(format!(
                    "column {} is not a string or JSON column",
                    field.name()
                )));
            }
        };
    }
    for (&i, paths) in &resolved.paths {
        let field = schema.field(i);
        if Storage::of(field) != Storage::Json {
            return Err(Error::invalid_spec(format!(
                "column {} is not a JSON column",
                field.name()
            )));
        }
        columns[i] = json::map_documents(&columns[i], |text| case_document(text, paths, upper));
    }
    rebuild(schema, columns, batch.num_rows())
}

/// Each string a path reaches, re-cased and written back as sjson writes strings. Other
/// values, and documents that are not JSON, are left alone.
fn case_document(text: &str, paths: &[&JsonPath], upper: bool) -> String {
    json::edit_paths(text, paths, |text, _, _, found| {
        found
            .into_iter()
            .filter(|e| matches!(e.node.value, json::Value::String))
            .map(|e| {
                let current = json::decode_string(&text[e.node.span.clone()]);
                (
                    e.node.span.clone(),
                    json::sjson_quote(&go_case(&current, upper)),
                )
            })
            .collect()
    })
}
