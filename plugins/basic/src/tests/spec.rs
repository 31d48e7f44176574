//! The spec: CloudQuery's validation messages, Quarry's own refusals, defaults, the schema.

use super::*;

#[test]
fn cloudquery_messages_are_collected_into_one_error() {
    let error = spec_error(json!([
        {"kind": "add_column", "name": "x"},
        {"kind": "nope"},
        {"kind": "remove_columns", "include_sha": true, "value": "v"},
        {"kind": "obfuscate_columns_except", "columns": ["a"], "unmatched": "hide"},
        {"kind": "uppercase", "columns": ["a"], "unmatched": "drop", "value": "v"},
        {"kind": "change_table_names", "columns": ["a"]},
        {"kind": "drop_rows"},
        {"kind": "add_current_timestamp_column", "new_table_name_template": "t"},
        {"kind": "obfuscate_sensitive_columns", "columns": ["a"]},
        {"kind": "rename_column", "name": "a", "value": "b", "columns": ["c"]}
    ]));
    let expected = [
        "transformations[0]: 'name' and 'value' fields must be specified for add_column transformation",
        "transformations[1]: unknown transformation kind: nope",
        "transformations[2]: 'columns' field must be specified for remove_columns transformation",
        "transformations[2]: name/value/new_table_name_template fields must not be specified for remove_columns transformation",
        "transformations[2]: include_sha field must not be specified for remove_columns transformation",
        r#"transformations[3]: unmatched must be one of "drop", "collapse", "redact" for obfuscate_columns_except transformation"#,
        "transformations[4]: value field must be empty for uppercase transformation",
        "transformations[4]: unmatched field must not be specified for uppercase transformation",
        "transformations[5]: 'new_table_name_template' field must be specified for change_table_names transformation",
        "transformations[5]: name/value/columns fields must not be specified for change_table_names transformation",
        "transformations[6]: 'columns' must be specified for drop_rows transformation",
        "transformations[7]: 'name' field must be specified for add_current_timestamp_column transformation",
        "transformations[7]: value/columns/new_table_name_template fields must not be specified for add_current_timestamp_column transformation",
        "transformations[7]: new_table_name_template field must not be specified for add_current_timestamp_column transformation",
        "transformations[8]: 'columns' field must not be specified for obfuscate_sensitive_columns transformation",
        "transformations[9]: columns field must not be specified for rename_column transformation",
    ];
    assert_eq!(error, expected.join("; "));
}

/// An empty `value` counts as absent, as in Go; `null` spec and entries give no
/// transformations.
#[test]
fn empty_values_are_absent_and_null_lists_are_empty() {
    let error = spec_error(json!([{"kind": "add_column", "name": "x", "value": ""}]));
    assert!(
        error.contains("'name' and 'value' fields must be specified"),
        "{error}"
    );
    let spec: Spec = serde_json::from_value(json!({"transformations": null})).expect("null list");
    assert!(Basic::new(spec).is_ok());
    // `value: ""` is allowed where a value is forbidden.
    basic(json!([{"kind": "remove_columns", "columns": ["a"], "value": ""}]));
}

#[test]
fn templates_other_than_old_name_are_refused_naming_the_template() {
    for (template, why) in [
        ("{{.NewName}}", "`{{.NewName}}` is not supported"),
        (
            "x_{{ .OldName | upper }}",
            "`{{.OldName | upper}}` is not supported",
        ),
        ("{{.OldName", "unclosed action"),
        ("{{/* no end }}", "comment ends before closing delimiter"),
    ] {
        let error = spec_error(json!([
            {"kind": "change_table_names", "new_table_name_template": template}
        ]));
        assert!(
            error.starts_with(&format!(
                "transformations[0]: error parsing new_table_name_template {template:?}: "
            )),
            "{error}"
        );
        assert!(error.contains(why), "{error}");
    }
}

#[test]
fn json_paths_outside_the_supported_syntax_are_refused() {
    for (entry, why) in [
        ("doc.a*", "wildcards"),
        ("doc.a.#", "ends with `#`"),
        ("doc.a..b", "empty key"),
        ("doc.list.#(x==1)", "queries"),
        ("doc.@reverse", "modifiers"),
        ("doc.a|b", "pipes"),
    ] {
        let error = spec_error(json!([{"kind": "remove_columns", "columns": [entry]}]));
        assert!(
            error.starts_with(&format!("transformations[0]: column path {entry:?}: ")),
            "{error}"
        );
        assert!(error.contains(why), "{entry}: {error}");
    }
    // Escapes make them keys.
    basic(
        json!([{"kind": "obfuscate_columns", "columns": [r"doc.a\*", r"doc.kubectl\.kubernetes\.io\/x", r"doc.\#"]}]),
    );
}

/// Unknown fields are refused (a misspelt field would otherwise do nothing), and the JSON
/// Schema the host checks specs against is generated.
#[test]
fn unknown_fields_are_refused_and_the_schema_is_generated() {
    let unknown = serde_json::from_value::<Spec>(json!({
        "transformations": [{"kind": "remove_columns", "column": ["a"]}]
    }));
    assert!(unknown.is_err());
    let schema = serde_json::to_string(&schemars::schema_for!(Spec)).expect("schema");
    for field in [
        "transformations",
        "kind",
        "tables",
        "columns",
        "name",
        "value",
        "include_sha",
        "unmatched",
        "new_table_name_template",
    ] {
        assert!(schema.contains(&format!("\"{field}\"")), "{field}");
    }
}

/// CloudQuery's documented example spec loads.
#[test]
fn the_documented_example_loads() {
    basic(json!([
        {"kind": "obfuscate_columns", "tables": ["xkcd_comics"], "columns": ["safe_title", "title"], "include_sha": false},
        {"kind": "obfuscate_sensitive_columns"},
        {"kind": "obfuscate_columns_except", "tables": ["xkcd_comics"], "unmatched": "drop", "columns": ["num", "img"]},
        {"kind": "remove_columns", "tables": ["xkcd_comics"], "columns": ["transcript", "news"]},
        {"kind": "add_column", "tables": ["xkcd_comics"], "name": "source", "value": "xkcd"},
        {"kind": "add_primary_keys", "tables": ["xkcd_comics"], "columns": ["_cq_source_name"]},
        {"kind": "add_current_timestamp_column", "tables": ["xkcd_comics"], "name": "_record_processed_at"},
        {"kind": "change_table_names", "tables": ["*"], "new_table_name_template": "cq_sync_{{.OldName}}"},
        {"kind": "rename_column", "tables": ["xkcd_comics"], "name": "img", "value": "img_url"},
        {"kind": "uppercase", "tables": ["xkcd_comics"], "columns": ["title"]},
        {"kind": "lowercase", "tables": ["xkcd_comics"], "columns": ["title"]},
        {"kind": "drop_rows", "tables": ["xkcd_comics"], "columns": ["year"], "value": "2023"}
    ]));
}
