//! Column entries: a plain column name, or `column.path` into a JSON column.
//!
//! CloudQuery splits an entry at its first dot: the text before is the column, the rest a
//! gjson/sjson path. Quarry implements the part of that syntax its documentation uses: object
//! keys separated by `.`, `\` escaping the next character (`\.` for a dot inside a key), a
//! number selecting an array element, and a `#` segment for every element of an array. The rest of
//! gjson's language (`*`/`?` wildcards, `#(...)` queries, `|` pipes, `@` modifiers, `[`/`{`
//! multipaths) is refused when the spec is loaded, naming the entry; in CloudQuery those either
//! do something other than what the entry says or, for deletes, recurse without end.
//!
//! Two edge cases come out differently from CloudQuery, on purpose: a `#` path that reaches
//! nothing in a value leaves it alone (CloudQuery's sjson fork then adds the path's last key,
//! holding the marker, to every element), and deleting through `#` deletes every value reached
//! (the fork renumbers the matches and misses some when not every element has the key).
//! Several entries are applied in the order listed; CloudQuery's order is Go's map order.
//!
//! `obfuscate_columns_except` reads its allowlist its own way (CloudQuery's `splitJSONPath`):
//! only `\.` is an escape and every segment is compared literally, with `#` matching any array
//! index.

use std::collections::{BTreeMap, BTreeSet};

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// An object key, or an array index when it is all digits and the value is an array.
    Key(String),
    /// `#`: every element of an array.
    Every,
}

/// A path inside a JSON column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonPath {
    /// The entry as written (`tags.foo.#.bar`), for messages and de-duplication.
    pub entry: String,
    /// The JSON column.
    pub column: String,
    /// The steps inside its values (never empty).
    pub segments: Vec<Segment>,
}

/// A `columns` entry of remove/obfuscate/case transformations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnRef {
    /// The whole column.
    Whole(String),
    /// A path inside a JSON column.
    Path(JsonPath),
}

impl ColumnRef {
    /// Reads an entry; the error names it and says what is not supported.
    pub(crate) fn parse(entry: &str) -> Result<ColumnRef, String> {
        let Some((column, rest)) = entry.split_once('.') else {
            return Ok(ColumnRef::Whole(entry.to_string()));
        };
        let segments =
            parse_segments(rest).map_err(|why| format!("column path {entry:?}: {why}"))?;
        Ok(ColumnRef::Path(JsonPath {
            entry: entry.to_string(),
            column: column.to_string(),
            segments,
        }))
    }
}

fn parse_segments(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    // Whether `current` holds escaped characters (an escaped `#` is a key, not a wildcard).
    let mut escaped = false;
    let mut chars = path.chars();
    let finish = |current: &mut String, escaped: &mut bool, segments: &mut Vec<Segment>| {
        let segment = std::mem::take(current);
        let literal = std::mem::take(escaped);
        if segment.is_empty() && !literal {
            return Err("it has an empty key (two dots in a row, or a trailing dot)".to_string());
        }
        segments.push(if segment == "#" && !literal {
            Segment::Every
        } else {
            Segment::Key(segment)
        });
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => {
                    current.push(next);
                    escaped = true;
                }
                None => return Err("it ends with a lone `\\`".to_string()),
            },
            '.' => finish(&mut current, &mut escaped, &mut segments)?,
            '*' | '?' => {
                return Err(format!(
                    "gjson wildcards (`{c}`) are not supported; write `\\{c}` for a literal `{c}`"
                ));
            }
            '|' => return Err("gjson pipes (`|`) are not supported".to_string()),
            '#' if current.is_empty() && !escaped && chars.clone().next() == Some('(') => {
                return Err("gjson queries (`#(...)`) are not supported".to_string());
            }
            '@' | '[' | '{' if current.is_empty() && !escaped => {
                return Err(format!(
                    "gjson modifiers and multipaths (a key starting with `{c}`) are not supported; write `\\{c}` for a literal `{c}`"
                ));
            }
            _ => current.push(c),
        }
    }
    finish(&mut current, &mut escaped, &mut segments)?;
    if segments.last() == Some(&Segment::Every) {
        return Err(
            "it ends with `#`, which names an array's length, not its elements; add the key inside the elements (`list.#.field`)"
                .to_string(),
        );
    }
    Ok(segments)
}

/// The columns a list of entries names in one schema, resolved as CloudQuery's
/// `splitJSONColumns` does: plain names that exist (each once, the first column of that name),
/// and paths grouped by column, in the order listed, minus paths into a column that is also
/// listed whole. Names that do not exist are ignored.
pub(crate) struct Resolved<'a> {
    /// Indices of the columns named whole, in column order.
    pub whole: Vec<usize>,
    /// Per column index, its paths in the order listed.
    pub paths: BTreeMap<usize, Vec<&'a JsonPath>>,
}

impl<'a> Resolved<'a> {
    pub(crate) fn new(refs: &'a [ColumnRef], schema: &arrow_schema::Schema) -> Self {
        let index_of = |name: &str| schema.fields().iter().position(|f| f.name() == name);
        let whole: BTreeSet<usize> = refs
            .iter()
            .filter_map(|r| match r {
                ColumnRef::Whole(name) => index_of(name),
                ColumnRef::Path(_) => None,
            })
            .collect();
        let mut paths: BTreeMap<usize, Vec<&JsonPath>> = BTreeMap::new();
        for r in refs {
            if let ColumnRef::Path(path) = r
                && let Some(i) = index_of(&path.column)
                && !whole.contains(&i)
            {
                let list = paths.entry(i).or_default();
                if !list.iter().any(|p| p.entry == path.entry) {
                    list.push(path);
                }
            }
        }
        Resolved {
            whole: whole.into_iter().collect(),
            paths,
        }
    }
}

/// The allowlist of `obfuscate_columns_except`: columns kept whole, and per column the JSON
/// sub-paths kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Allowlist {
    pub whole: BTreeSet<String>,
    pub nested: BTreeMap<String, Vec<Vec<String>>>,
}

impl Allowlist {
    pub(crate) fn new(entries: &[String]) -> Self {
        let mut list = Allowlist::default();
        for entry in entries {
            match entry.split_once('.') {
                Some((column, path)) => list
                    .nested
                    .entry(column.to_string())
                    .or_default()
                    .push(split_allowlist_path(path)),
                None => {
                    list.whole.insert(entry.clone());
                }
            }
        }
        list
    }
}

/// CloudQuery's `splitJSONPath`: `.` separates segments and `\.` is a literal dot; every other
/// character, backslashes included, is kept as written.
fn split_allowlist_path(path: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                current.push('.');
                chars.next();
            }
            '.' => segments.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    segments.push(current);
    segments
}
