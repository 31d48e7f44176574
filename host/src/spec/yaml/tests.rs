use super::*;

fn parse_one(text: &str) -> Node {
    let mut docs = parse_documents(text).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn pos(line: usize, column: usize) -> Pos {
    Pos { line, column }
}

#[test]
fn keeps_positions_of_keys_and_values() {
    let doc = parse_one("kind: source\nspec:\n  name: test\n  tables: [a, \"b\"]\n");
    let spec = doc.get("spec").unwrap();
    assert_eq!(spec.at, pos(3, 3));
    let NodeKind::Map(entries) = &spec.kind else {
        panic!("not a map")
    };
    assert_eq!(entries[0].0.at, pos(3, 3));
    assert_eq!(entries[0].1.at, pos(3, 9));
    let NodeKind::Seq(items) = &spec.get("tables").unwrap().kind else {
        panic!("not a seq")
    };
    assert_eq!(items[0].at, pos(4, 12));
    assert_eq!(items[1].at, pos(4, 15));
}

#[test]
fn str_tag_keeps_a_string() {
    let doc = parse_one("a: !!str 5\n");
    let NodeKind::Scalar(s) = &doc.get("a").unwrap().kind else {
        panic!("not a scalar")
    };
    assert_eq!(s.resolve(), Resolved::Str("5"));
}

#[test]
fn skips_empty_documents_and_expands_aliases() {
    let docs = parse_documents("# only a comment\n---\n---\na: &x [1, 2]\nb: *x\n---\n").unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0].get("a").unwrap().kind,
        docs[0].get("b").unwrap().kind
    );
    assert!(parse_documents("# nothing\n").unwrap().is_empty());
}

#[test]
fn syntax_error_has_a_position() {
    let err = parse_documents("a: b\n  c: d\n").unwrap_err();
    assert_eq!(err.at, Some(pos(2, 4)));
    assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
}

#[test]
fn duplicate_keys_are_refused() {
    let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
    assert_eq!(
        (err.at, err.message.as_str()),
        (Some(pos(3, 1)), "duplicate key `a`")
    );
}

#[test]
fn alias_bombs_and_deep_nesting_are_refused() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let prev = i - 1;
        let items = vec![format!("*a{prev}"); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    let err = parse_documents(&bomb).unwrap_err();
    assert!(
        err.message.contains("once aliases are expanded"),
        "{}",
        err.message
    );

    let deep = "[".repeat(200);
    let err = parse_documents(&deep).unwrap_err();
    assert_eq!(err.message, "nesting is deeper than 128 levels");
}

#[test]
fn merge_keys_share_settings() {
    let doc = parse_one("base: &base {a: 1, b: 2}\nuse:\n  <<: *base\n  b: 3\n");
    let merged = doc.get("use").unwrap();
    let text = |key| match &merged.get(key).unwrap().kind {
        NodeKind::Scalar(s) => s.text.clone(),
        _ => panic!("not a scalar"),
    };
    assert_eq!((text("a"), text("b")), ("1".to_owned(), "3".to_owned()));
    assert_eq!(merged.get("a").unwrap().at, pos(1, 17));
    let err = parse_documents("a:\n  <<: 5\n").unwrap_err();
    assert_eq!(err.message, "`<<` can only merge mappings");
}

/// Odd and broken inputs come back as values or errors, never as a panic.
#[test]
fn hostile_inputs_do_not_panic() {
    let inputs = [
        "",
        "---",
        "...",
        "[",
        "]",
        "{a: [}",
        "&a [*a]",
        "*unknown",
        "? [a]\n: b",
        "? a\n? a\n",
        "!!binary x",
        "%YAML 1.2\n---\na: 1",
        "a: |\n  x\n",
        "\t",
        "a: b\n\tc: d",
        ": x",
        "- - - -",
        "a: &x\nb: *x",
        "\u{feff}a: 1",
        "a: \"\\u00\"",
        "{? a}",
        "[a: b]",
        "'",
        "a:\n  - b\n c: d",
        "&a a: *a",
        "--- |\n\u{0}",
    ];
    for input in inputs {
        let _ = parse_documents(input);
    }
}
