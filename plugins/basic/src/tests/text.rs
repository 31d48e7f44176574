//! The text helpers: JSON splicing as sjson does it, Go's string escaping and number text.

use crate::json;
use crate::path::{ColumnRef, Segment};
use crate::value_str::go_float;

fn path(entry: &str) -> Vec<Segment> {
    match ColumnRef::parse(entry) {
        Ok(ColumnRef::Path(p)) => p.segments,
        other => panic!("{entry}: {other:?}"),
    }
}

fn delete(text: &str, entry: &str) -> String {
    let root = json::parse(text).expect("valid JSON");
    let mut found = Vec::new();
    json::targets(&root, &path(entry), &mut found);
    let edits = found
        .into_iter()
        .map(|e| (json::deletion(text, e), String::new()))
        .collect();
    json::splice(text, edits)
}

/// sjson's delete: the comma before an entry goes with it, or for a first entry the comma
/// after; spacing after `{` goes, after `[` it stays.
#[test]
fn deleting_keeps_the_rest_of_the_text() {
    assert_eq!(delete(r#"{"a":1,"b":2}"#, "d.a"), r#"{"b":2}"#);
    assert_eq!(delete(r#"{"a":1,"b":2}"#, "d.b"), r#"{"a":1}"#);
    assert_eq!(delete(r#"{ "a" : 1 , "b" : 2 }"#, "d.a"), r#"{ "b" : 2 }"#);
    // From the comma before to the value's end: the spaces around go on either side.
    assert_eq!(delete(r#"{ "a" : 1 , "b" : 2 }"#, "d.b"), r#"{ "a" : 1  }"#);
    assert_eq!(delete(r#"{ "a": 1 }"#, "d.a"), r#"{ }"#);
    assert_eq!(delete(r#"[ 1, 2, 3 ]"#, "d.0"), r#"[  2, 3 ]"#);
    assert_eq!(delete(r#"[1,2,3]"#, "d.2"), r#"[1,2]"#);
    assert_eq!(delete(r#"[1,2,3]"#, "d.3"), r#"[1,2,3]"#);
    assert_eq!(
        delete(r#"{"a.b":{"c":1,"d":2}}"#, r"d.a\.b.c"),
        r#"{"a.b":{"d":2}}"#
    );
    assert_eq!(delete(r#"{"k\u0065y":1,"x":2}"#, "d.key"), r#"{"x":2}"#);
}

/// gjson's raw result for `#` paths: the matched values joined in `[...]`, nested per `#`.
#[test]
fn raw_results_join_what_every_element_matches() {
    let text = r#"{"o":[{"n":[{"v":1},{"v":2}]},{"x":0},{"n":[{"v":3}]}]}"#;
    let root = json::parse(text).expect("valid");
    assert_eq!(
        json::get_raw(text, &root, &path("d.o.#.n.#.v")).as_deref(),
        Some("[[1,2],[3]]")
    );
    assert_eq!(
        json::get_raw(text, &root, &path("d.o.1.x")).as_deref(),
        Some("0")
    );
    assert_eq!(json::get_raw(text, &root, &path("d.o.9")), None);
    assert_eq!(
        json::get_raw(text, &root, &path("d.o.#.x")).as_deref(),
        Some("[0]")
    );
}

#[test]
fn invalid_json_is_recognised() {
    for bad in [
        "",
        "{",
        "[1,]",
        r#"{"a" 1}"#,
        "01",
        "1.",
        "-",
        r#""\x""#,
        "\"a\u{1}\"",
        "tru",
        "{} x",
    ] {
        assert!(json::parse(bad).is_none(), "{bad:?}");
    }
    for good in [
        "1",
        " -0.5e+10 ",
        r#"{"a":[true,false,null,"\ud83d\ude00"]}"#,
        "[]",
    ] {
        assert!(json::parse(good).is_some(), "{good:?}");
    }
    assert!(json::parse_prefix("{} x").is_some());
    assert!(json::parse(&"[".repeat(10_000)).is_none());
}

#[test]
fn strings_decode_and_quote_as_go_does() {
    assert_eq!(
        json::decode_string(r#""a\"b\\c\/\u00e9\ud83d\ude00\ud800x""#),
        "a\"b\\c/é😀\u{fffd}x"
    );
    assert_eq!(
        json::go_quote("a<b>&\"\n\u{8}\u{1}\u{2028}é", true),
        r#""a\u003cb\u003e\u0026\"\n\b\u0001\u2028é""#
    );
    assert_eq!(json::go_quote("<", false), r#""<""#);
    assert_eq!(json::sjson_quote("A<B"), r#""A<B""#);
    assert_eq!(json::sjson_quote("É<"), r#""É\u003c""#);
}

/// `strconv.FormatFloat(v, 'g', -1, bits)`.
#[test]
fn floats_read_as_go_writes_them() {
    for (v, text) in [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (123456.7, "123456.7"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5e-300, "-2.5e-300"),
        (1e21, "1e+21"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
    ] {
        assert_eq!(go_float(v, 64), text, "{v}");
    }
    assert_eq!(go_float(f64::from(0.1f32), 32), "0.1");
    assert_eq!(go_float(f64::from(16777216.0f32), 32), "1.6777216e+07");
}
