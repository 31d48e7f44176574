//! The `path` template: parsed once at `init`, expanded for every file. Expanded paths are
//! normalised because the sandbox resolves a path by matching its leading components against the
//! names of the preopened directories: `./out/x.csv` and `out/./x.csv` must reach `out` as
//! `out/x.csv`. `..` is kept: refusing to escape a granted directory is the sandbox's job.

use std::path::{Component, Path, PathBuf};

use quarry_sdk::{Error, Result};

const TABLE: &str = "TABLE";
const UUID: &str = "UUID";
const FORMAT: &str = "FORMAT";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Table,
    Uuid,
    Format,
}

/// A parsed `path`: text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; an unknown or unclosed placeholder is an invalid-spec error.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| {
                Error::invalid_spec(format!(
                    "`path`: `{{{{` without a closing `}}}}` in {text:?}; the placeholders are \
                     {{{{TABLE}}}}, {{{{UUID}}}} and {{{{FORMAT}}}}"
                ))
            })?;
            parts.push(match &after[..end] {
                TABLE => Part::Table,
                UUID => Part::Uuid,
                FORMAT => Part::Format,
                other => {
                    return Err(Error::invalid_spec(format!(
                        "`path`: unknown placeholder {{{{{other}}}}}; the placeholders are \
                         {{{{TABLE}}}}, {{{{UUID}}}} and {{{{FORMAT}}}}"
                    )));
                }
            });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Whether the template names the table.
    pub fn has_table(&self) -> bool {
        self.parts.contains(&Part::Table)
    }

    /// Whether each file gets its own UUID in its name.
    pub fn has_uuid(&self) -> bool {
        self.parts.contains(&Part::Uuid)
    }

    /// The directory every file goes under: the template's text before its first placeholder, up
    /// to the last separator (`out/{{TABLE}}/x.csv` → `out`). `None` when files go directly in the
    /// working directory.
    pub fn fixed_dir(&self) -> Option<PathBuf> {
        let Some(Part::Text(text)) = self.parts.first() else {
            return None;
        };
        let dir = normalize(Path::new(&text[..text.rfind('/')?]));
        (!dir.as_os_str().is_empty()).then_some(dir)
    }

    /// The normalised path of one file.
    pub fn expand(&self, table: &str, uuid: &uuid::Uuid, format: &str) -> PathBuf {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Table => text.push_str(table),
                Part::Uuid => text.push_str(
                    uuid.hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer()),
                ),
                Part::Format => text.push_str(format),
            }
        }
        normalize(Path::new(&text))
    }
}

/// `path` without `.` components (leading `./`, `a/./b`) and repeated separators.
pub fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// The directory to suggest granting for `path`: its first directory (with any leading `..` or
/// root), written as a user would write it in `permissions: { files: ... }`.
pub fn grant_for(path: &Path) -> String {
    let mut dir = PathBuf::new();
    for component in path.parent().unwrap_or(Path::new("")).components() {
        dir.push(component);
        if matches!(component, Component::Normal(_)) {
            break;
        }
    }
    if dir.as_os_str().is_empty() {
        ".".to_string()
    } else if dir.is_relative() && !dir.starts_with("..") {
        format!("./{}", dir.display())
    } else {
        dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_directory_is_the_text_before_the_first_placeholder() {
        let dir = |t: &str| Template::parse(t).unwrap().fixed_dir();
        assert_eq!(
            dir("./out/{{TABLE}}/{{UUID}}.csv"),
            Some(PathBuf::from("out"))
        );
        assert_eq!(dir("out/sub/{{TABLE}}.csv"), Some(PathBuf::from("out/sub")));
        assert_eq!(dir("/abs/{{TABLE}}.csv"), Some(PathBuf::from("/abs")));
        assert_eq!(dir("../up/t_{{TABLE}}.csv"), Some(PathBuf::from("../up")));
        assert_eq!(dir("{{TABLE}}.csv"), None);
        assert_eq!(dir("./{{TABLE}}.csv"), None);
    }

    fn uuid() -> uuid::Uuid {
        uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677)
    }

    #[test]
    fn placeholders_expand() {
        let t = Template::parse("out/{{TABLE}}/{{UUID}}.{{FORMAT}}").unwrap();
        assert!(t.has_table() && t.has_uuid());
        assert_eq!(
            t.expand("items", &uuid(), "csv"),
            PathBuf::from("out/items/01234567-89ab-cdef-0011-223344556677.csv")
        );
        let t = Template::parse("{{TABLE}}.{{FORMAT}}.{{TABLE}}").unwrap();
        assert!(!t.has_uuid());
        assert_eq!(t.expand("a", &uuid(), "json"), PathBuf::from("a.json.a"));
    }

    #[test]
    fn expanded_paths_are_normalised() {
        let t = Template::parse("./out/./{{TABLE}}//x.{{FORMAT}}").unwrap();
        assert_eq!(t.expand("t", &uuid(), "csv").to_str(), Some("out/t/x.csv"));
        let t = Template::parse("././../up/{{TABLE}}").unwrap();
        assert_eq!(t.expand("t", &uuid(), "csv").to_str(), Some("../up/t"));
        let t = Template::parse("/abs/./{{TABLE}}").unwrap();
        assert_eq!(t.expand("t", &uuid(), "csv").to_str(), Some("/abs/t"));
    }

    #[test]
    fn bad_placeholders_are_invalid_specs() {
        let err = Template::parse("out/{{table}}.csv").unwrap_err();
        assert_eq!(err.kind, quarry_sdk::ErrorKind::InvalidSpec);
        assert_eq!(
            err.message,
            "`path`: unknown placeholder {{table}}; the placeholders are {{TABLE}}, {{UUID}} and {{FORMAT}}"
        );
        let err = Template::parse("out/{{TABLE").unwrap_err();
        assert_eq!(
            err.message,
            "`path`: `{{` without a closing `}}` in \"out/{{TABLE\"; the placeholders are {{TABLE}}, \
             {{UUID}} and {{FORMAT}}"
        );
    }

    #[test]
    fn the_grant_is_the_first_directory() {
        assert_eq!(grant_for(Path::new("out/items/x.csv")), "./out");
        assert_eq!(grant_for(Path::new("x.csv")), ".");
        assert_eq!(grant_for(Path::new("../shared/t/x.csv")), "../shared");
        assert_eq!(grant_for(Path::new("/data/t/x.csv")), "/data");
    }
}
