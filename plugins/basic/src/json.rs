//! JSON text edited in place, as CloudQuery's gjson/sjson do: a value is parsed only to find
//! where things are, and a change splices new text into the original, so keys keep their order
//! and everything not touched keeps its bytes (spacing, number spelling, escapes).
//!
//! Also here: Go's `encoding/json` string escaping, which decides the exact text (and so the
//! SHA-256) of what CloudQuery writes.

use std::ops::Range;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, BinaryArray};

use crate::path::{JsonPath, Segment};

/// How deep a document may nest before it is treated as invalid (Go's decoder allows 10000;
/// this keeps the recursion well inside a component's stack).
const MAX_DEPTH: usize = 500;

/// A parsed value: where it is in the text, and what it holds.
#[derive(Debug)]
pub(crate) struct Node {
    pub span: Range<usize>,
    pub value: Value,
}

#[derive(Debug)]
pub(crate) enum Value {
    /// A string; the span includes the quotes.
    String,
    /// A number, `true`, `false` or `null`.
    Other,
    Array(Vec<Entry>),
    /// Members with their decoded keys.
    Object(Vec<(String, Entry)>),
}

/// An array element or object member, with the position of the `[`, `{` or `,` before it
/// (what sjson's delete removes along with it).
#[derive(Debug)]
pub(crate) struct Entry {
    pub separator: usize,
    pub node: Node,
}

/// Parses a whole document (whitespace around it allowed); `None` if it is not valid JSON.
pub(crate) fn parse(text: &str) -> Option<Node> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let node = parser.value(0)?;
    parser.skip_ws();
    (parser.pos == text.len()).then_some(node)
}

/// Parses the first value of `text` and ignores what follows it, as Go's `json.Decoder` does.
pub(crate) fn parse_prefix(text: &str) -> Option<Node> {
    Parser {
        bytes: text.as_bytes(),
        pos: 0,
    }
    .value(0)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let ok = self.peek() == Some(b);
        if ok {
            self.pos += 1;
        }
        ok
    }

    fn value(&mut self, depth: usize) -> Option<Node> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        let start = self.pos;
        let value = match self.peek()? {
            b'"' => {
                self.string()?;
                Value::String
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if !self.eat(b']') {
                    let mut separator = start;
                    loop {
                        let node = self.value(depth + 1)?;
                        items.push(Entry { separator, node });
                        self.skip_ws();
                        separator = self.pos;
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                Value::Array(items)
            }
            b'{' => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if !self.eat(b'}') {
                    let mut separator = start;
                    loop {
                        self.skip_ws();
                        let key_start = self.pos;
                        self.string()?;
                        let key = decode_string(
                            std::str::from_utf8(&self.bytes[key_start..self.pos]).ok()?,
                        );
                        self.skip_ws();
                        if !self.eat(b':') {
                            return None;
                        }
                        let node = self.value(depth + 1)?;
                        members.push((key, Entry { separator, node }));
                        self.skip_ws();
                        separator = self.pos;
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                Value::Object(members)
            }
            b't' => self.literal("true")?,
            b'f' => self.literal("false")?,
            b'n' => self.literal("null")?,
            _ => {
                self.number()?;
                Value::Other
            }
        };
        Some(Node {
            span: start..self.pos,
            value,
        })
    }

    fn literal(&mut self, word: &str) -> Option<Value> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word.as_bytes()).then(|| {
            self.pos = end;
            Value::Other
        })
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn string(&mut self) -> Option<()> {
        if !self.eat(b'"') {
            return None;
        }
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => {
                    self.pos += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => {
                            let hex = self.bytes.get(self.pos + 1..self.pos + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.pos += 5;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
    }
}

/// The text of a valid JSON string token (quotes included), unescaped. Lone UTF-16 surrogates
/// become U+FFFD, as in gjson and Go.
pub(crate) fn decode_string(token: &str) -> String {
    let inner = token
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(token);
    if !inner.contains('\\') {
        return inner.to_string();
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    let hex4 = |chars: &mut std::str::Chars<'_>| -> Option<u32> {
        let digits: String = chars.by_ref().take(4).collect();
        u32::from_str_radix(&digits, 16).ok()
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let Some(unit) = hex4(&mut chars) else {
                    out.push(char::REPLACEMENT_CHARACTER);
                    continue;
                };
                if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate: a low one must follow as another `\u` escape.
                    let mut ahead = chars.clone();
                    if ahead.next() == Some('\\')
                        && ahead.next() == Some('u')
                        && let Some(low) = hex4(&mut ahead)
                        && (0xDC00..0xE000).contains(&low)
                    {
                        chars = ahead;
                        let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                        continue;
                    }
                    out.push(char::REPLACEMENT_CHARACTER);
                } else {
                    out.push(char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// `s` as a JSON string the way Go's `encoding/json` writes it: `\b \f \n \r \t` and other
/// control characters escaped, U+2028/U+2029 escaped, and with `html` also `<`, `>` and `&`.
pub(crate) fn go_quote(s: &str, html: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html => {
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 0xf] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A string value as sjson's `Set` writes it: quoted as is when it is plain ASCII without
/// quotes, backslashes or control characters, otherwise through Go's `json.Marshal`.
pub(crate) fn sjson_quote(s: &str) -> String {
    let plain = s
        .bytes()
        .all(|b| (b' '..=0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        format!("\"{s}\"")
    } else {
        go_quote(s, true)
    }
}

/// The child of `node` a key names: an object's first member of that key, or, for an
/// all-digit key, an array's element at that index (gjson's rules).
fn child<'a>(node: &'a Node, key: &str) -> Option<&'a Entry> {
    match &node.value {
        Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, e)| e),
        Value::Array(items) if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) => {
            items.get(key.parse::<usize>().ok()?)
        }
        _ => None,
    }
}

/// What gjson's `Get` returns for `segments` under `node`: the raw text of the value, or for a
/// path through `#`, `[` + the raw results of each element that has one, joined by `,` + `]`.
pub(crate) fn get_raw(text: &str, node: &Node, segments: &[Segment]) -> Option<String> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(text[node.span.clone()].to_string());
    };
    match first {
        Segment::Key(key) => get_raw(text, &child(node, key)?.node, rest),
        Segment::Every => match &node.value {
            Value::Array(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .filter_map(|e| get_raw(text, &e.node, rest))
                    .collect();
                Some(format!("[{}]", parts.join(",")))
            }
            _ => None,
        },
    }
}

/// Every value `segments` reaches under `node` (through each element for `#`), with the entry
/// that holds it, in document order.
pub(crate) fn targets<'a>(node: &'a Node, segments: &[Segment], out: &mut Vec<&'a Entry>) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    let mut visit = |entry: &'a Entry| {
        if rest.is_empty() {
            out.push(entry);
        } else {
            targets(&entry.node, rest, out);
        }
    };
    match first {
        Segment::Key(key) => {
            if let Some(entry) = child(node, key) {
                visit(entry);
            }
        }
        Segment::Every => {
            if let Value::Array(items) = &node.value {
                items.iter().for_each(visit);
            }
        }
    }
}

/// The text sjson's `Delete` removes with an entry: the `,` before it and what lies between,
/// or for a first entry, what follows it up to and including the next `,`. (After a `{` the
/// spacing before the key goes too; after a `[` it stays, as sjson does.)
pub(crate) fn deletion(text: &str, entry: &Entry) -> Range<usize> {
    let bytes = text.as_bytes();
    let end = entry.node.span.end;
    match bytes.get(entry.separator) {
        Some(b',') => entry.separator..end,
        open => {
            let start = if open == Some(&b'{') {
                entry.separator + 1
            } else {
                entry.node.span.start
            };
            let after = text[end..]
                .bytes()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .map(|n| end + n);
            match after {
                Some(comma) if bytes[comma] == b',' => start..comma + 1,
                _ => start..end,
            }
        }
    }
}

/// `text` with each range replaced (ranges must not overlap).
pub(crate) fn splice(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut out = text.to_string();
    for (range, replacement) in edits {
        out.replace_range(range, &replacement);
    }
    out
}

/// `text` with the edits `edit` makes at the places each path reaches, one path after the other,
/// each on the text the one before left (as sjson applies them). Text that is not JSON is
/// returned as it is. `edit` gets the text, its parsed root, the path and the places it reaches.
pub(crate) fn edit_paths(
    text: &str,
    paths: &[&JsonPath],
    mut edit: impl FnMut(&str, &Node, &JsonPath, Vec<&Entry>) -> Vec<(Range<usize>, String)>,
) -> String {
    let mut text = text.to_string();
    for path in paths {
        let Some(root) = parse(&text) else {
            break;
        };
        let mut found = Vec::new();
        targets(&root, &path.segments, &mut found);
        let edits = edit(&text, &root, path, found);
        text = splice(&text, edits);
    }
    text
}

/// A JSON column's documents through `f`; values that are not UTF-8 are kept as they are.
pub(crate) fn map_documents(column: &ArrayRef, f: impl Fn(&str) -> String) -> ArrayRef {
    Arc::new(
        column
            .as_binary::<i32>()
            .iter()
            .map(|v| {
                v.map(|v| match std::str::from_utf8(v) {
                    Ok(text) => f(text).into_bytes(),
                    Err(_) => v.to_vec(),
                })
            })
            .collect::<BinaryArray>(),
    )
}
