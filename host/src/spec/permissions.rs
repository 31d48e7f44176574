//! The `permissions:` block of a plugin: everything the sandbox may grant it (ARCHITECTURE.md, `sandbox`).
//! Values are kept as written; the sandbox interprets host patterns and paths.

use std::fmt;
use std::time::Duration;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::units;

/// What a plugin may reach. Empty (the default) grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of permissions")]
pub struct Permissions {
    /// Host patterns as written, e.g. `*.example.com:8443`.
    #[serde(deserialize_with = "units::string_list")]
    pub network: Vec<String>,
    /// Paths as written, in the order written, with the access granted to each.
    #[serde(deserialize_with = "files")]
    pub files: Vec<(String, Access)>,
    /// Names of environment variables passed through.
    #[serde(deserialize_with = "units::string_list")]
    pub env: Vec<String>,
    /// Linear memory cap in bytes.
    #[serde(deserialize_with = "units::byte_size")]
    pub memory: Option<u64>,
    #[serde(deserialize_with = "units::duration")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase", expecting = "`read` or `write`")]
pub enum Access {
    Read,
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

/// `files: { "./out": write }`; a mapping keeps the YAML short, a list keeps the order stable.
fn files<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Access)>, D::Error> {
    struct Files;
    impl<'de> Visitor<'de> for Files {
        type Value = Vec<(String, Access)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping of paths to `read` or `write`")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut files = Vec::new();
            while let Some(entry) = map.next_entry()? {
                files.push(entry);
            }
            Ok(files)
        }
    }
    d.deserialize_map(Files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::de::from_node;
    use crate::spec::yaml::parse_documents;

    fn parse(text: &str) -> Result<Permissions, String> {
        let node = parse_documents(text).unwrap().remove(0);
        from_node(&node).map_err(|e| {
            let at = e.at.unwrap();
            let field = e.field.map(|f| format!("`{f}`: ")).unwrap_or_default();
            format!("{}:{}: {field}{}", at.line, at.column, e.message)
        })
    }

    #[test]
    fn reads_every_permission() {
        let permissions = parse(concat!(
            "network: [\"hacker-news.firebaseio.com\", \"*.example.com:8443\"]\n",
            "files: { \"./out\": write, \"./fixtures\": read }\n",
            "env: [GITHUB_TOKEN]\n",
            "memory: 512MiB\n",
            "timeout: 30m\n",
        ))
        .unwrap();
        assert_eq!(
            permissions.network,
            ["hacker-news.firebaseio.com", "*.example.com:8443"]
        );
        assert_eq!(
            permissions.files,
            [
                ("./out".to_owned(), Access::Write),
                ("./fixtures".to_owned(), Access::Read)
            ]
        );
        assert_eq!(permissions.env, ["GITHUB_TOKEN"]);
        assert_eq!(permissions.memory, Some(512 << 20));
        assert_eq!(permissions.timeout, Some(Duration::from_secs(1800)));
        assert_eq!(parse("memory: 65536\n").unwrap().memory, Some(65536));
    }

    #[test]
    fn explains_bad_values() {
        assert_eq!(
            parse("files:\n  ./out: rw\n").unwrap_err(),
            "2:10: `./out`: unknown value `rw`, expected `read` or `write`"
        );
        assert_eq!(
            parse("memory: 12 parsecs\n").unwrap_err(),
            "1:9: `memory`: cannot read `12 parsecs`; write e.g. 512MiB"
        );
        assert_eq!(
            parse("timeout: 30\n").unwrap_err(),
            "1:10: `timeout`: expected a duration such as `30s`, found integer `30`"
        );
        assert_eq!(
            parse("env: GITHUB_TOKEN\n").unwrap_err(),
            "1:6: `env`: expected a list of strings, found string \"GITHUB_TOKEN\""
        );
        assert_eq!(
            parse("files: [./out]\n").unwrap_err(),
            "1:8: `files`: expected a mapping of paths to `read` or `write`, found a list"
        );
    }
}
