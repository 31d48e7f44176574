//! The plugin's `spec:` as the user writes it, and its validation into [`Settings`], the form the
//! rest of the plugin works from. Every rule that JSON Schema cannot express (placeholders in
//! `path`, keys of `format_spec` that belong to another format) is checked here, so a bad spec
//! fails at `init` rather than on the first row.

use quarry_sdk::{Error, Result};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::path::Template;
use crate::writer::{CsvOptions, FormatOptions, ParquetOptions};

/// The `file` plugin's `spec:`: `path` and `format` as a destination, `tables` as a source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Destination: where each table is written, relative to the plugin's working directory.
    /// Placeholders: `{{TABLE}}` (the table's name; required), `{{UUID}}` (a fresh UUID per file)
    /// and `{{FORMAT}}` (`csv`, `json` or `parquet`). E.g. `out/{{TABLE}}/{{UUID}}.{{FORMAT}}`.
    pub path: Option<String>,
    /// Destination: the file format: `csv`, `json` (one JSON object per line) or `parquet`.
    #[serde(default)]
    #[schemars(with = "Format")]
    pub format: Option<Format>,
    /// Source: the tables to read, each from the files its glob patterns match.
    #[serde(default)]
    pub tables: Vec<crate::source::TableSpec>,
    /// Options of the chosen format; each key applies to one format only.
    #[serde(default)]
    pub format_spec: Option<FormatSpec>,
    /// Write each table to exactly the file `path` names, without `{{UUID}}`. Without it, one
    /// file per table per sync (named by `{{UUID}}` if `path` has it).
    #[serde(default)]
    pub no_rotate: bool,
    /// Start a new file after this many rows of a table; `path` must contain `{{UUID}}`.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_rows_per_file: Option<u64>,
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values, with a header row unless `skip_header`.
    Csv,
    /// JSON lines: one JSON object per row.
    Json,
    /// Apache Parquet, with the Arrow schema stored in the file.
    Parquet,
}

impl Format {
    /// The name as written in the spec and substituted for `{{FORMAT}}`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Parquet => "parquet",
        }
    }
}

/// A Parquet compression codec (zstd is not available in this build).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Snappy: fast, moderate ratio.
    #[default]
    Snappy,
    /// No compression.
    None,
    /// Gzip (deflate): slower, better ratio.
    Gzip,
    /// LZ4 (the `LZ4_RAW` Parquet codec).
    Lz4,
}

/// Options of the chosen format.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    /// csv: the field delimiter, one ASCII character (default `,`).
    #[schemars(length(min = 1, max = 1))]
    pub delimiter: Option<String>,
    /// csv: leave out the header row (default false).
    pub skip_header: Option<bool>,
    /// parquet: the compression codec (default `snappy`).
    pub compression: Option<Compression>,
    /// parquet: rows per row group (default 100000).
    #[schemars(range(min = 1))]
    pub row_group_size: Option<u64>,
}

const DEFAULT_ROW_GROUP_SIZE: u64 = 100_000;

/// A validated spec.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where each file goes.
    pub template: Template,
    /// The format and its options.
    pub format: FormatOptions,
    /// Rows per file before a new one is started.
    pub max_rows_per_file: Option<u64>,
}

/// What a validated spec configures: a destination, or a source's tables.
#[derive(Debug)]
pub enum Config {
    Destination(Settings),
    Source(Vec<crate::source::SourceTable>),
}

impl Spec {
    /// Checks the rules JSON Schema cannot express and resolves defaults; a source's files are
    /// found and its tables' schemas read.
    pub fn validate(self) -> Result<Config> {
        if self.tables.is_empty() {
            return Ok(Config::Destination(self.destination()?));
        }
        let written = [
            ("path", self.path.is_some()),
            ("format", self.format.is_some()),
            ("format_spec", self.format_spec.is_some()),
            ("no_rotate", self.no_rotate),
            ("max_rows_per_file", self.max_rows_per_file.is_some()),
        ];
        if let Some((field, _)) = written.iter().find(|(_, set)| *set) {
            return Err(Error::invalid_spec(format!(
                "`{field}` is a destination's setting, and `tables` a source's: a `quarry/file` is one or the other; remove `{field}`, or `tables`"
            )));
        }
        let mut tables: Vec<crate::source::SourceTable> = Vec::new();
        for spec in self.tables {
            if tables.iter().any(|t| t.table.name == spec.name) {
                return Err(Error::invalid_spec(format!(
                    "`tables` names table `{}` twice",
                    spec.name
                )));
            }
            tables.push(spec.open()?);
        }
        Ok(Config::Source(tables))
    }

    fn destination(self) -> Result<Settings> {
        let (Some(path), Some(format)) = (self.path, self.format) else {
            return Err(Error::invalid_spec(
                "`quarry/file` needs `path` and `format` to write files (as a destination), or \
                 `tables` to read them (as a source)",
            ));
        };
        let template = Template::parse(&path)?;
        if !template.has_table() {
            return Err(Error::invalid_spec(format!(
                "`path` ({}) must contain {{{{TABLE}}}}, or every table would be written to the same \
                 file; e.g. path: \"out/{{{{TABLE}}}}/{{{{UUID}}}}.{{{{FORMAT}}}}\"",
                path
            )));
        }
        if self.no_rotate && self.max_rows_per_file.is_some() {
            return Err(Error::invalid_spec(
                "`max_rows_per_file` starts new files, which `no_rotate: true` forbids; remove one of the two",
            ));
        }
        if self.no_rotate && template.has_uuid() {
            return Err(Error::invalid_spec(
                "`no_rotate: true` writes each table to one fixed file, so `path` cannot contain \
                 {{UUID}}; remove {{UUID}} from `path` or set `no_rotate: false`",
            ));
        }
        match self.max_rows_per_file {
            Some(0) => {
                return Err(Error::invalid_spec(
                    "`max_rows_per_file` must be at least 1",
                ));
            }
            Some(_) if !template.has_uuid() => {
                return Err(Error::invalid_spec(
                    "`max_rows_per_file` starts a new file after that many rows, so `path` must \
                     contain {{UUID}} to give each file its own name",
                ));
            }
            _ => {}
        }
        let format = format_options(format, self.format_spec.unwrap_or_default())?;
        Ok(Settings {
            template,
            format,
            max_rows_per_file: self.max_rows_per_file,
        })
    }
}

fn format_options(format: Format, spec: FormatSpec) -> Result<FormatOptions> {
    let FormatSpec {
        delimiter,
        skip_header,
        compression,
        row_group_size,
    } = spec;
    let foreign = [
        ("delimiter", Format::Csv, delimiter.is_some()),
        ("skip_header", Format::Csv, skip_header.is_some()),
        ("compression", Format::Parquet, compression.is_some()),
        ("row_group_size", Format::Parquet, row_group_size.is_some()),
    ];
    if let Some((key, owner, _)) = foreign
        .iter()
        .find(|(_, owner, set)| *set && *owner != format)
    {
        return Err(Error::invalid_spec(format!(
            "`format_spec.{key}` applies to `format: {}` only, not `format: {}`; remove it",
            owner.name(),
            format.name()
        )));
    }
    Ok(match format {
        Format::Csv => FormatOptions::Csv(CsvOptions {
            delimiter: csv_delimiter("format_spec.delimiter", delimiter.as_deref())?,
            header: !skip_header.unwrap_or(false),
        }),
        Format::Json => FormatOptions::Json,
        Format::Parquet => {
            let rows = row_group_size.unwrap_or(DEFAULT_ROW_GROUP_SIZE);
            let row_group_size =
                usize::try_from(rows)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| {
                        Error::invalid_spec(format!(
                            "`format_spec.row_group_size` must be between 1 and {}, got {rows}",
                            usize::MAX
                        ))
                    })?;
            FormatOptions::Parquet(ParquetOptions {
                compression: compression.unwrap_or_default(),
                row_group_size,
            })
        }
    })
}

/// The delimiter of spec field `field` (`,` when unset).
pub(crate) fn csv_delimiter(field: &str, delimiter: Option<&str>) -> Result<u8> {
    let Some(text) = delimiter else {
        return Ok(b',');
    };
    match text.as_bytes() {
        [byte] if byte.is_ascii() && !matches!(byte, b'"' | b'\n' | b'\r') => Ok(*byte),
        _ => Err(Error::invalid_spec(format!(
            "`{field}` must be one ASCII character other than `\"` or a line break, got {text:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<Settings> {
        match serde_json::from_value::<Spec>(json)
            .map_err(|e| Error::invalid_spec(e.to_string()))?
            .validate()?
        {
            Config::Destination(settings) => Ok(settings),
            Config::Source(tables) => panic!("a source: {tables:?}"),
        }
    }

    fn message(json: serde_json::Value) -> String {
        match settings(json) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => {
                assert_eq!(e.kind, quarry_sdk::ErrorKind::InvalidSpec, "{e}");
                e.message
            }
        }
    }

    #[test]
    fn defaults_are_resolved_per_format() {
        let csv =
            settings(serde_json::json!({"path": "out/{{TABLE}}.csv", "format": "csv"})).unwrap();
        assert_eq!(
            csv.format,
            FormatOptions::Csv(CsvOptions {
                delimiter: b',',
                header: true
            })
        );
        assert_eq!(csv.max_rows_per_file, None);
        let parquet =
            settings(serde_json::json!({"path": "{{TABLE}}", "format": "parquet"})).unwrap();
        assert_eq!(
            parquet.format,
            FormatOptions::Parquet(ParquetOptions {
                compression: Compression::Snappy,
                row_group_size: 100_000
            })
        );
        let tuned = settings(serde_json::json!({
            "path": "{{TABLE}}", "format": "csv",
            "format_spec": {"delimiter": "\t", "skip_header": true},
        }))
        .unwrap();
        assert_eq!(
            tuned.format,
            FormatOptions::Csv(CsvOptions {
                delimiter: b'\t',
                header: false
            })
        );
    }

    #[test]
    fn spec_errors_name_the_field_and_the_fix() {
        use serde_json::json;
        assert_eq!(
            message(json!({"path": "out/data.csv", "format": "csv"})),
            "`path` (out/data.csv) must contain {{TABLE}}, or every table would be written to the \
             same file; e.g. path: \"out/{{TABLE}}/{{UUID}}.{{FORMAT}}\""
        );
        assert_eq!(
            message(json!({"path": "out/{{TABLE}}/{{SYNC_ID}}.csv", "format": "csv"})),
            "`path`: unknown placeholder {{SYNC_ID}}; the placeholders are {{TABLE}}, {{UUID}} and {{FORMAT}}"
        );
        assert_eq!(
            message(
                json!({"path": "out/{{TABLE}}/{{UUID}}.csv", "format": "csv", "no_rotate": true})
            ),
            "`no_rotate: true` writes each table to one fixed file, so `path` cannot contain \
             {{UUID}}; remove {{UUID}} from `path` or set `no_rotate: false`"
        );
        assert_eq!(
            message(json!({"path": "out/{{TABLE}}.csv", "format": "csv", "max_rows_per_file": 10})),
            "`max_rows_per_file` starts a new file after that many rows, so `path` must contain \
             {{UUID}} to give each file its own name"
        );
        assert_eq!(
            message(
                json!({"path": "{{TABLE}}", "format": "csv", "no_rotate": true, "max_rows_per_file": 1})
            ),
            "`max_rows_per_file` starts new files, which `no_rotate: true` forbids; remove one of the two"
        );
        assert_eq!(
            message(json!({"path": "{{TABLE}}{{UUID}}", "format": "csv", "max_rows_per_file": 0})),
            "`max_rows_per_file` must be at least 1"
        );
        assert_eq!(
            message(
                json!({"path": "{{TABLE}}", "format": "json", "format_spec": {"delimiter": ";"}})
            ),
            "`format_spec.delimiter` applies to `format: csv` only, not `format: json`; remove it"
        );
        assert_eq!(
            message(
                json!({"path": "{{TABLE}}", "format": "csv", "format_spec": {"compression": "gzip"}})
            ),
            "`format_spec.compression` applies to `format: parquet` only, not `format: csv`; remove it"
        );
        assert_eq!(
            message(
                json!({"path": "{{TABLE}}", "format": "csv", "format_spec": {"delimiter": "::"}})
            ),
            "`format_spec.delimiter` must be one ASCII character other than `\"` or a line break, got \"::\""
        );
        assert_eq!(
            message(
                json!({"path": "{{TABLE}}", "format": "parquet", "format_spec": {"row_group_size": 0}})
            ),
            format!(
                "`format_spec.row_group_size` must be between 1 and {}, got 0",
                usize::MAX
            )
        );
    }

    #[test]
    fn unknown_keys_and_values_are_refused_by_serde() {
        use serde_json::json;
        assert!(
            message(json!({"path": "{{TABLE}}", "format": "xml"}))
                .contains("unknown variant `xml`")
        );
        assert!(
            message(json!({"path": "{{TABLE}}", "format": "csv", "rotate": true}))
                .contains("unknown field `rotate`")
        );
        let zstd = json!({"path": "{{TABLE}}", "format": "parquet", "format_spec": {"compression": "zstd"}});
        assert!(message(zstd).contains("unknown variant `zstd`"));
    }

    #[test]
    fn the_json_schema_describes_every_field() {
        let schema = serde_json::to_value(schemars::schema_for!(Spec)).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        for key in [
            "path",
            "format",
            "format_spec",
            "no_rotate",
            "max_rows_per_file",
        ] {
            assert!(properties.contains_key(key), "{key} missing from {schema}");
        }
        assert!(
            properties["path"]["description"]
                .as_str()
                .unwrap()
                .contains("{{TABLE}}")
        );
        assert_eq!(properties["max_rows_per_file"]["minimum"], 1);
        assert_eq!(schema["$defs"]["FormatSpec"]["additionalProperties"], false);
        // Which fields are needed depends on the role: `validate` says.
        assert!(schema.get("required").is_none(), "{schema}");
        assert!(properties.contains_key("tables"));
        assert!(message(serde_json::json!({})).contains("needs `path` and `format`"));
        assert!(
            message(
                serde_json::json!({"format": "csv", "tables": [{"name": "t", "paths": ["x"]}]})
            )
            .starts_with("`format` is a destination's setting, and `tables` a source's")
        );
    }
}
