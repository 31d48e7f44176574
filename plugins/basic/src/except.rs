//! Inside a JSON column that `obfuscate_columns_except` keeps by sub-path: everything not on the
//! allowlist is dropped, collapsed or redacted (CloudQuery's `redactJSONExcept` and its walk).
//!
//! CloudQuery decodes the value with Go's `encoding/json` (numbers kept as written) into maps,
//! walks it, and encodes it again; so the output is compact, object keys come out sorted, and
//! strings are escaped Go's way. The markers hash `json.Marshal` of what they replace, which
//! escapes `<`, `>` and `&`. This module does the same, with its own value type.

use std::collections::BTreeMap;

use crate::json::{self, Node};
use crate::obfuscate::marker;
use crate::transform::Unmatched;

/// A JSON value as Go decodes it into `any` with `UseNumber`.
#[derive(Debug, Clone, PartialEq)]
enum GoValue {
    Null,
    Bool(bool),
    /// The number as written.
    Number(String),
    String(String),
    Array(Vec<GoValue>),
    /// Keys sorted bytewise, as Go writes maps; a repeated key keeps its last value.
    Object(BTreeMap<String, GoValue>),
}

impl GoValue {
    fn from_node(text: &str, node: &Node) -> GoValue {
        let raw = &text[node.span.clone()];
        match &node.value {
            json::Value::String => GoValue::String(json::decode_string(raw)),
            json::Value::Other => match raw {
                "null" => GoValue::Null,
                "true" => GoValue::Bool(true),
                "false" => GoValue::Bool(false),
                number => GoValue::Number(number.to_string()),
            },
            json::Value::Array(items) => GoValue::Array(
                items
                    .iter()
                    .map(|e| GoValue::from_node(text, &e.node))
                    .collect(),
            ),
            json::Value::Object(members) => GoValue::Object(
                members
                    .iter()
                    .map(|(k, e)| (k.clone(), GoValue::from_node(text, &e.node)))
                    .collect(),
            ),
        }
    }

    /// Compact JSON, as Go's encoder writes it (`html`: `json.Marshal`'s `<>&` escaping).
    fn encode(&self, html: bool, out: &mut String) {
        match self {
            GoValue::Null => out.push_str("null"),
            GoValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            GoValue::Number(n) => out.push_str(n),
            GoValue::String(s) => out.push_str(&json::go_quote(s, html)),
            GoValue::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.encode(html, out);
                }
                out.push(']');
            }
            GoValue::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&json::go_quote(key, html));
                    out.push(':');
                    value.encode(html, out);
                }
                out.push('}');
            }
        }
    }

    /// `json.Marshal` of the value: what a marker's hash is taken over.
    fn marshal(&self) -> String {
        let mut out = String::new();
        self.encode(true, &mut out);
        out
    }
}

/// `text` with everything outside `patterns` handled per `unmatched`, or `None` if it is not
/// JSON (the caller then redacts the whole value).
pub(crate) fn redact_except(
    text: &str,
    patterns: &[Vec<String>],
    include_sha: bool,
    unmatched: Unmatched,
) -> Option<String> {
    let root = GoValue::from_node(text, &json::parse_prefix(text)?);
    let walk = Walk {
        patterns,
        include_sha,
        unmatched,
    };
    let mut out = String::new();
    match walk.node(root, &mut Vec::new()) {
        Some(value) => value.encode(false, &mut out),
        None => out.push_str("null"),
    }
    Some(out)
}

struct Walk<'a> {
    patterns: &'a [Vec<String>],
    include_sha: bool,
    unmatched: Unmatched,
}

impl Walk<'_> {
    /// The node at `path` after the walk, or `None` to remove it.
    fn node(&self, node: GoValue, path: &mut Vec<String>) -> Option<GoValue> {
        if self.kept(path) {
            return Some(node);
        }
        match node {
            GoValue::Object(members) if self.leads_to_kept(path) => {
                let mut out = BTreeMap::new();
                for (key, value) in members {
                    path.push(key.clone());
                    if let Some(value) = self.node(value, path) {
                        out.insert(key, value);
                    }
                    path.pop();
                }
                Some(GoValue::Object(out))
            }
            GoValue::Array(items) if self.leads_to_kept(path) => {
                let mut out = Vec::new();
                for (i, item) in items.into_iter().enumerate() {
                    path.push(i.to_string());
                    out.extend(self.node(item, path));
                    path.pop();
                }
                Some(GoValue::Array(out))
            }
            GoValue::Null => (self.unmatched != Unmatched::Drop).then_some(GoValue::Null),
            other => self.dead(other),
        }
    }

    /// A subtree no pattern keeps anything of.
    fn dead(&self, node: GoValue) -> Option<GoValue> {
        match self.unmatched {
            Unmatched::Drop => None,
            Unmatched::Collapse => Some(GoValue::String(marker(
                node.marshal().as_bytes(),
                self.include_sha,
            ))),
            Unmatched::Redact => Some(self.redact_leaves(node)),
        }
    }

    fn redact_leaves(&self, node: GoValue) -> GoValue {
        match node {
            GoValue::Object(members) => GoValue::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k, self.redact_leaves(v)))
                    .collect(),
            ),
            GoValue::Array(items) => {
                GoValue::Array(items.into_iter().map(|v| self.redact_leaves(v)).collect())
            }
            GoValue::Null => GoValue::Null,
            leaf => GoValue::String(marker(leaf.marshal().as_bytes(), self.include_sha)),
        }
    }

    /// A pattern is a prefix of `path` (`#` matching an all-digit segment).
    fn kept(&self, path: &[String]) -> bool {
        self.patterns
            .iter()
            .any(|p| p.len() <= path.len() && segments_match(p, path))
    }

    /// `path` is a proper prefix of some pattern.
    fn leads_to_kept(&self, path: &[String]) -> bool {
        self.patterns
            .iter()
            .any(|p| p.len() > path.len() && segments_match(&p[..path.len()], path))
    }
}

fn segments_match(pattern: &[String], path: &[String]) -> bool {
    pattern.iter().zip(path).all(|(p, s)| {
        if p == "#" {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
        } else {
            p == s
        }
    })
}
