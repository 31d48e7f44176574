//! What a source writes to during a sync, and how the user's table selection is applied.

use arrow_array::{ArrayRef, RecordBatch};

use crate::{Error, Result, Table};

/// A message from a source to the host.
#[derive(Debug, Clone)]
pub enum Message {
    /// The table's schema; sent before its first insert.
    MigrateTable(Table),
    /// Rows of a table; the batch carries the table's schema.
    Insert(RecordBatch),
}

/// Where a source's messages go: the host's pipeline in a component, a vector in unit tests.
pub(crate) trait Sink {
    fn emit(&mut self, message: Message) -> Result<()>;
}

impl Sink for Vec<Message> {
    fn emit(&mut self, message: Message) -> Result<()> {
        self.push(message);
        Ok(())
    }
}

/// The sync in progress, as a source sees it: where its rows go.
pub struct SyncContext<'a> {
    sink: &'a mut dyn Sink,
    deterministic_cq_id: bool,
}

impl<'a> SyncContext<'a> {
    pub(crate) fn new(sink: &'a mut dyn Sink, deterministic_cq_id: bool) -> Self {
        SyncContext {
            sink,
            deterministic_cq_id,
        }
    }

    /// A context that collects messages into `out`, for a plugin's native unit tests.
    pub fn collecting(out: &'a mut Vec<Message>) -> Self {
        SyncContext {
            sink: out,
            deterministic_cq_id: false,
        }
    }

    /// Whether `_cq_id` values should be derived from the primary key (the user's
    /// `deterministic_cq_id`).
    pub fn deterministic_cq_id(&self) -> bool {
        self.deterministic_cq_id
    }

    /// Sends rows of `table`, one array per column in the table's order. Blocks while the host's
    /// pipeline is full. An error means the sync was cancelled: return it.
    pub fn insert(&mut self, table: &Table, columns: Vec<ArrayRef>) -> Result<()> {
        let batch = RecordBatch::try_new(table.schema(), columns)
            .map_err(|e| Error::internal(format!("table {}: {e}", table.name)))?;
        self.insert_batch(batch)
    }

    /// Sends a batch whose schema is a table's schema (with its `cq:table_name` metadata).
    pub fn insert_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.sink.emit(Message::Insert(batch))
    }

    pub(crate) fn migrate(&mut self, table: &Table) -> Result<()> {
        self.sink.emit(Message::MigrateTable(table.clone()))
    }
}

/// Whether `name` matches the glob `pattern` (`*` any run of characters, `?` one character).
pub fn matches_glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative wildcard matching with one backtrack point: linear in practice.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The tables of `all` that the patterns select, in `all`'s order. A pattern that selects
/// nothing is an error that lists the tables there are, so a typo is never a silent no-op.
/// Child tables follow their parent unless `skip_dependent_tables` is set.
pub fn select_tables(
    all: &[Table],
    tables: &[String],
    skip_tables: &[String],
    skip_dependent_tables: bool,
) -> Result<Vec<Table>> {
    let names = || {
        all.iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for pattern in tables.iter().chain(skip_tables) {
        if !all.iter().any(|t| matches_glob(pattern, &t.name)) {
            return Err(Error::invalid_spec(format!(
                "table pattern `{pattern}` matches no table; the tables are: {}",
                names()
            )));
        }
    }
    let skipped = |t: &Table| skip_tables.iter().any(|p| matches_glob(p, &t.name));
    let chosen = |t: &Table| tables.iter().any(|p| matches_glob(p, &t.name));
    let mut selected: Vec<&Table> = all.iter().filter(|t| chosen(t) && !skipped(t)).collect();
    if !skip_dependent_tables {
        // Add descendants of selected tables, to any depth.
        loop {
            let before = selected.len();
            for t in all {
                let parent_selected = t
                    .parent
                    .as_ref()
                    .is_some_and(|p| selected.iter().any(|s| &s.name == p));
                if parent_selected && !skipped(t) && !selected.iter().any(|s| s.name == t.name) {
                    selected.push(t);
                }
            }
            if selected.len() == before {
                break;
            }
        }
    }
    for t in &selected {
        if let Some(parent) = &t.parent
            && !selected.iter().any(|s| &s.name == parent)
        {
            return Err(Error::invalid_spec(format!(
                "table `{}` is a child of `{parent}`, which is not selected; add `{parent}` to `tables`",
                t.name
            )));
        }
    }
    Ok(all
        .iter()
        .filter(|t| selected.iter().any(|s| s.name == t.name))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches_glob("*", "anything"));
        assert!(matches_glob("test_*", "test_rows"));
        assert!(matches_glob("t?st", "test"));
        assert!(matches_glob("*rows", "test_rows"));
        assert!(matches_glob("a*b*c", "aXXbYYc"));
        assert!(!matches_glob("a*b*c", "aXXbYY"));
        assert!(!matches_glob("test", "test_rows"));
    }

    #[test]
    fn selection_follows_patterns_and_parents() {
        let all = vec![
            Table::new("a"),
            Table::new("a_child").child_of("a"),
            Table::new("b"),
        ];
        let names = |t: Vec<Table>| t.into_iter().map(|t| t.name).collect::<Vec<_>>();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(select_tables(&all, &s(&["a"]), &[], false).unwrap()),
            ["a", "a_child"]
        );
        assert_eq!(
            names(select_tables(&all, &s(&["a"]), &[], true).unwrap()),
            ["a"]
        );
        assert_eq!(
            names(select_tables(&all, &s(&["*"]), &s(&["b"]), false).unwrap()),
            ["a", "a_child"]
        );
        let err = select_tables(&all, &s(&["c*"]), &[], false).unwrap_err();
        assert_eq!(
            err.message,
            "table pattern `c*` matches no table; the tables are: a, a_child, b"
        );
        let err = select_tables(&all, &s(&["a_child"]), &[], false).unwrap_err();
        assert!(err.message.contains("add `a` to `tables`"), "{err}");
    }
}
