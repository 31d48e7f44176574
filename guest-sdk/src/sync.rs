//! What a source writes to during a sync: its rows, with `_cq_id` and `_cq_parent_id` filled
//! in, its child tables resolved per parent batch, and its delete requests; and how the user's
//! table selection is applied.

use std::collections::HashMap;

use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, RecordBatch, new_null_array};
use arrow_buffer::{Buffer, NullBuffer};
use arrow_schema::SchemaRef;

use crate::cq_id::{self, RandomIds};
use crate::{Error, Result, Source, Table};

/// A message from a source to the host.
#[derive(Debug, Clone)]
pub enum Message {
    /// The table's schema; sent before its first insert.
    MigrateTable(Table),
    /// Rows of a table; the batch carries the table's schema.
    Insert(RecordBatch),
    /// Rows to delete from a table.
    DeleteRecord(DeleteRequest),
    /// An incremental cursor the source set (see [`SyncContext::state_set`]).
    State {
        /// The cursor's name.
        key: String,
        /// Its value.
        value: String,
    },
}

/// Delete the rows of `table` that match every group of `where_clause` (CloudQuery's
/// `DeleteRecord`): a row is deleted when, for each group, its predicates joined by the group's
/// operator hold.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRequest {
    /// The table to delete from.
    pub table: String,
    /// The groups, all of which must match.
    pub where_clause: Vec<PredicateGroup>,
}

/// Predicates joined by one operator.
#[derive(Debug, Clone, PartialEq)]
pub struct PredicateGroup {
    /// How the predicates combine.
    pub grouping: Grouping,
    /// `column = value` tests.
    pub predicates: Vec<Predicate>,
}

/// How a group's predicates combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// Every predicate holds.
    And,
    /// At least one predicate holds.
    Or,
}

/// `column = value`, where `value` is the one row of a one-column batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    /// The column compared.
    pub column: String,
    /// A batch of one row and one column holding the value.
    pub value: RecordBatch,
}

impl DeleteRequest {
    /// Delete the rows of `table` whose `column` equals the single value in `value`.
    pub fn equal(table: &str, column: &str, value: ArrayRef) -> Result<Self> {
        if value.len() != 1 {
            return Err(Error::internal(format!(
                "a delete-record value for `{table}.{column}` must hold one value, not {}",
                value.len()
            )));
        }
        let field = arrow_schema::Field::new(column, value.data_type().clone(), true);
        let batch = RecordBatch::try_new(
            std::sync::Arc::new(arrow_schema::Schema::new(vec![field])),
            vec![value],
        )?;
        Ok(DeleteRequest {
            table: table.into(),
            where_clause: vec![PredicateGroup {
                grouping: Grouping::And,
                predicates: vec![Predicate {
                    column: column.into(),
                    value: batch,
                }],
            }],
        })
    }
}

/// Where a source's messages go: the host's pipeline in a component, a vector in unit tests.
pub(crate) trait Sink {
    fn emit(&mut self, message: Message) -> Result<()>;
    fn state_get(&mut self, key: &str) -> Result<Option<String>>;
}

/// In unit tests the cursors are the `State` messages already in the vector: put one in before
/// [`run_sync`] to start from a cursor.
impl Sink for Vec<Message> {
    fn emit(&mut self, message: Message) -> Result<()> {
        self.push(message);
        Ok(())
    }

    fn state_get(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self.iter().rev().find_map(|m| match m {
            Message::State { key: k, value } if k == key => Some(value.clone()),
            _ => None,
        }))
    }
}

/// Resolves a child table's rows from its parent's rows, as CloudQuery's table resolvers do.
/// A source returns one from [`Source::relation`] for each child table.
pub trait Relation {
    /// The child rows of `parents`, a batch of the parent table as it was sent (with its
    /// `_cq_id`). Push each group of child rows with the parent row each belongs to.
    fn resolve(&mut self, parents: &RecordBatch, out: &mut ChildRows) -> Result<()>;
}

/// The child rows a [`Relation`] found for one parent batch.
#[derive(Default)]
pub struct ChildRows {
    groups: Vec<(Vec<u32>, Vec<ArrayRef>)>,
}

impl ChildRows {
    /// Adds rows of the child table (its own columns, in order) and, for each row, the index of
    /// its parent row in the parent batch.
    pub fn push(&mut self, parent_rows: Vec<u32>, columns: Vec<ArrayRef>) {
        self.groups.push((parent_rows, columns));
    }
}

/// What to sync, as the user's spec says it.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Table name patterns to sync.
    pub tables: Vec<String>,
    /// Table name patterns to leave out.
    pub skip_tables: Vec<String>,
    /// Leave out child tables unless they are selected themselves.
    pub skip_dependent_tables: bool,
    /// Derive `_cq_id` from the primary key instead of drawing it at random.
    pub deterministic_cq_id: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            tables: vec!["*".into()],
            skip_tables: Vec::new(),
            skip_dependent_tables: false,
            deterministic_cq_id: false,
        }
    }
}

struct Prepared {
    /// The schema sent to the host: `_cq_id`, `_cq_parent_id`, then the source's columns.
    schema: SchemaRef,
    /// The source's primary-key columns: (name, index among the source's own columns).
    keys: Vec<(String, usize)>,
    own_columns: usize,
}

/// The sync in progress, as a source sees it: where its rows go.
pub struct SyncContext<'a> {
    sink: &'a mut dyn Sink,
    deterministic_cq_id: bool,
    ids: RandomIds,
    tables: HashMap<String, Prepared>,
    /// Per parent table: its selected child tables and their resolvers.
    relations: HashMap<String, Vec<Child>>,
}

/// A selected child table and its resolver.
type Child = (String, Box<dyn Relation>);

/// Runs a sync of `source` as the host would, sending every message to `out`: the selected
/// tables' migrate messages, then the rows of the top-level tables from [`Source::sync`], each
/// batch followed by its child tables' rows. For a plugin's native unit tests.
pub fn run_sync<S: Source>(
    source: &mut S,
    options: &SyncOptions,
    out: &mut Vec<Message>,
) -> Result<()> {
    sync_into(source, options, out)
}

/// Runs a sync of `source` in this process, handing each message to `emit` as it is made (a
/// batch at a time, so memory stays that of one batch): a native driver, for programs that link
/// a plugin crate directly (`quarry bench`'s native baseline). Cursors read during the run are
/// the ones it set; an error from `emit` stops the sync and is returned.
pub fn sync_each<S: Source>(
    source: &mut S,
    options: &SyncOptions,
    emit: impl FnMut(Message) -> Result<()>,
) -> Result<()> {
    struct Each<F> {
        emit: F,
        cursors: HashMap<String, String>,
    }
    impl<F: FnMut(Message) -> Result<()>> Sink for Each<F> {
        fn emit(&mut self, message: Message) -> Result<()> {
            if let Message::State { key, value } = &message {
                self.cursors.insert(key.clone(), value.clone());
            }
            (self.emit)(message)
        }

        fn state_get(&mut self, key: &str) -> Result<Option<String>> {
            Ok(self.cursors.get(key).cloned())
        }
    }
    let mut sink = Each {
        emit,
        cursors: HashMap::new(),
    };
    sync_into(source, options, &mut sink)
}

pub(crate) fn sync_into<S: Source>(
    source: &mut S,
    options: &SyncOptions,
    sink: &mut dyn Sink,
) -> Result<()> {
    let tables = select_tables(
        &source.discover()?,
        &options.tables,
        &options.skip_tables,
        options.skip_dependent_tables,
    )?;
    let mut out = SyncContext {
        sink,
        deterministic_cq_id: options.deterministic_cq_id,
        ids: RandomIds::default(),
        tables: HashMap::new(),
        relations: HashMap::new(),
    };
    for table in &tables {
        let full = cq_id::with_id_columns(table);
        out.sink.emit(Message::MigrateTable(full.clone()))?;
        out.tables.insert(
            table.name.clone(),
            Prepared {
                schema: full.schema(),
                keys: table
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.primary_key)
                    .map(|(i, c)| (c.name.clone(), i))
                    .collect(),
                own_columns: table.columns.len(),
            },
        );
        if let Some(parent) = &table.parent {
            let relation = source.relation(table).ok_or_else(|| {
                Error::internal(format!(
                    "table `{}` is a child of `{parent}`, but the plugin has no relation that \
                     resolves it",
                    table.name
                ))
            })?;
            out.relations
                .entry(parent.clone())
                .or_default()
                .push((table.name.clone(), relation));
        }
    }
    let top_level: Vec<Table> = tables.into_iter().filter(|t| t.parent.is_none()).collect();
    source.sync(&top_level, &mut out)
}

impl SyncContext<'_> {
    /// Whether `_cq_id` values are derived from the primary key (the user's
    /// `deterministic_cq_id`).
    pub fn deterministic_cq_id(&self) -> bool {
        self.deterministic_cq_id
    }

    /// Sends rows of `table`, one array per column in the table's order (without `_cq_id` and
    /// `_cq_parent_id`: they are filled in here), then resolves its child tables for them.
    /// Blocks while the host's pipeline is full. An error means the sync was cancelled: return it.
    pub fn insert(&mut self, table: &Table, columns: Vec<ArrayRef>) -> Result<()> {
        self.insert_rows(&table.name, None, columns)
    }

    /// Sends a batch of a table's rows; the batch's schema must carry the table's name
    /// (`cq:table_name`) and its columns, as [`Table::schema`] makes it.
    pub fn insert_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let name = crate::table::table_name(batch.schema_ref()).to_string();
        self.insert_rows(&name, None, batch.columns().to_vec())
    }

    /// The incremental cursor `key` as the host's state backend holds it: what an earlier sync
    /// set (or this one), `None` the first time.
    pub fn state_get(&mut self, key: &str) -> Result<Option<String>> {
        self.sink.state_get(key)
    }

    /// Sets the incremental cursor `key`. It must describe only rows already inserted: the host
    /// saves it once every destination has made those rows durable, so the next sync that
    /// starts from it misses none.
    pub fn state_set(&mut self, key: &str, value: &str) -> Result<()> {
        self.sink.emit(Message::State {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    /// Asks the destinations to delete rows.
    pub fn delete_record(&mut self, request: DeleteRequest) -> Result<()> {
        if !self.tables.contains_key(&request.table) {
            return Err(Error::internal(format!(
                "delete-record for table `{}`, which is not being synced",
                request.table
            )));
        }
        self.sink.emit(Message::DeleteRecord(request))
    }

    fn insert_rows(
        &mut self,
        name: &str,
        parent_ids: Option<ArrayRef>,
        columns: Vec<ArrayRef>,
    ) -> Result<()> {
        let prepared = self.tables.get(name).ok_or_else(|| {
            Error::internal(format!(
                "rows for table `{name}`, which is not one of the tables being synced"
            ))
        })?;
        if columns.len() != prepared.own_columns {
            return Err(Error::internal(format!(
                "table `{name}` has {} columns, but {} arrays were sent",
                prepared.own_columns,
                columns.len()
            )));
        }
        let rows = columns.first().map_or(0, |c| c.len());
        if rows == 0 {
            return Ok(());
        }
        let ids = if self.deterministic_cq_id && !prepared.keys.is_empty() {
            let keys: Vec<(&str, &ArrayRef)> = prepared
                .keys
                .iter()
                .map(|(n, i)| (n.as_str(), &columns[*i]))
                .collect();
            cq_id::deterministic_ids(&keys, rows)?
        } else {
            self.ids.ids(rows)
        };
        let parent = parent_ids
            .unwrap_or_else(|| new_null_array(&arrow_schema::DataType::FixedSizeBinary(16), rows));
        let mut all = vec![ids, parent];
        all.extend(columns);
        let batch = RecordBatch::try_new(prepared.schema.clone(), all)
            .map_err(|e| Error::internal(format!("table {name}: {e}")))?;
        self.sink.emit(Message::Insert(batch.clone()))?;

        let Some(mut children) = self.relations.remove(name) else {
            return Ok(());
        };
        let result = self.resolve_children(&batch, &mut children);
        self.relations.insert(name.to_string(), children);
        result
    }

    fn resolve_children(&mut self, parents: &RecordBatch, children: &mut [Child]) -> Result<()> {
        let parent_ids = parents.column(0);
        for (child, relation) in children.iter_mut() {
            let mut rows = ChildRows::default();
            relation
                .resolve(parents, &mut rows)
                .map_err(|e| e.context(format!("resolving table `{child}`")))?;
            for (parent_rows, columns) in rows.groups {
                let ids = take_ids(parent_ids, &parent_rows)
                    .map_err(|e| e.context(format!("table `{child}`")))?;
                self.insert_rows(child, Some(ids), columns)?;
            }
        }
        Ok(())
    }
}

/// The ids at `rows` of a uuid column.
fn take_ids(ids: &ArrayRef, rows: &[u32]) -> Result<ArrayRef> {
    let ids = ids
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .ok_or_else(|| Error::internal("`_cq_id` is not a uuid column"))?;
    let mut bytes = Vec::with_capacity(rows.len() * 16);
    for &row in rows {
        let row = row as usize;
        if row >= ids.len() {
            return Err(Error::internal(format!(
                "a child row names parent row {row}, but the parent batch has {} rows",
                ids.len()
            )));
        }
        bytes.extend_from_slice(ids.value(row));
    }
    Ok(std::sync::Arc::new(FixedSizeBinaryArray::new(
        16,
        Buffer::from_vec(bytes),
        None::<NullBuffer>,
    )))
}

/// CloudQuery's `glob.Glob`, which its transformers match table names with: `*` matches any run
/// of characters (none included) and is the only wildcard; without one the pattern must equal
/// the name.
pub fn matches_star_glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == name;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
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

/// Which list of a source's spec a table pattern comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternList {
    /// `tables`.
    Tables,
    /// `skip_tables`.
    SkipTables,
}

/// Why a table selection is wrong, with the pattern at fault as data: the host points at that
/// pattern in the user's YAML without reading the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectionError {
    /// A pattern selects no table.
    NoMatch {
        /// The list the pattern is in, and its index there.
        list: PatternList,
        /// Its index in that list.
        index: usize,
        /// The pattern.
        pattern: String,
        /// The names of every table, comma-separated.
        tables: String,
    },
    /// A child table is selected but its parent is not.
    OrphanChild {
        /// The child table.
        table: String,
        /// Its parent.
        parent: String,
        /// The pattern that caused it: the skip pattern that removed the parent, else the
        /// pattern that selected the child.
        list: PatternList,
        /// Its index in that list.
        index: usize,
    },
}

impl std::fmt::Display for SelectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SelectionError::NoMatch {
                pattern, tables, ..
            } => write!(
                f,
                "table pattern `{pattern}` matches no table; the tables are: {tables}"
            ),
            SelectionError::OrphanChild { table, parent, .. } => write!(
                f,
                "table `{table}` is a child of `{parent}`, which is not selected; select `{parent}` too, or add `{table}` to `skip_tables`"
            ),
        }
    }
}

impl From<SelectionError> for Error {
    fn from(e: SelectionError) -> Self {
        Error::invalid_spec(e.to_string())
    }
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
    Ok(selection(all, tables, skip_tables, skip_dependent_tables)?)
}

/// [`select_tables`] with its error as data.
pub fn selection(
    all: &[Table],
    tables: &[String],
    skip_tables: &[String],
    skip_dependent_tables: bool,
) -> Result<Vec<Table>, SelectionError> {
    let lists = [
        (PatternList::Tables, tables),
        (PatternList::SkipTables, skip_tables),
    ];
    for (list, patterns) in lists {
        for (index, pattern) in patterns.iter().enumerate() {
            if !all.iter().any(|t| matches_glob(pattern, &t.name)) {
                return Err(SelectionError::NoMatch {
                    list,
                    index,
                    pattern: pattern.clone(),
                    tables: all
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    let first =
        |patterns: &[String], name: &str| patterns.iter().position(|p| matches_glob(p, name));
    let skipped = |t: &Table| first(skip_tables, &t.name).is_some();
    let chosen = |t: &Table| first(tables, &t.name).is_some();
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
            let (list, index) = match first(skip_tables, parent) {
                Some(index) => (PatternList::SkipTables, index),
                None => (PatternList::Tables, first(tables, &t.name).unwrap_or(0)),
            };
            return Err(SelectionError::OrphanChild {
                table: t.name.clone(),
                parent: parent.clone(),
                list,
                index,
            });
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
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::DataType;

    use super::*;
    use crate::{Column, Info, Plugin};

    /// Parents `0..n` with two children each, the child's `n` being 0 and 1.
    struct Family {
        parents: i64,
    }

    impl Plugin for Family {
        type Spec = serde_json::Value;
        fn info() -> Info {
            Info::new("family", "0.0.0", "parents and children")
        }
        fn new(_: serde_json::Value) -> Result<Self> {
            Ok(Family { parents: 3 })
        }
    }

    struct Children;

    impl Relation for Children {
        fn resolve(&mut self, parents: &RecordBatch, out: &mut ChildRows) -> Result<()> {
            let ids = parents
                .column_by_name("id")
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .ok_or_else(|| Error::internal("no id"))?;
            let rows: Vec<u32> = (0..ids.len() as u32).flat_map(|r| [r, r]).collect();
            let parent: Int64Array = rows.iter().map(|&r| ids.value(r as usize)).collect();
            let n: Int64Array = rows.iter().enumerate().map(|(i, _)| i as i64 % 2).collect();
            out.push(rows, vec![Arc::new(parent), Arc::new(n)]);
            Ok(())
        }
    }

    impl Source for Family {
        fn tables(&self) -> Vec<Table> {
            vec![
                Table::new("parents")
                    .column(Column::new("id", DataType::Int64).primary_key())
                    .column(Column::new("name", DataType::Utf8)),
                Table::new("children")
                    .child_of("parents")
                    .column(Column::new("parent", DataType::Int64).primary_key())
                    .column(Column::new("n", DataType::Int64).primary_key()),
                Table::new("loose").column(Column::new("x", DataType::Int64)),
            ]
        }
        fn sync(&mut self, tables: &[Table], out: &mut SyncContext<'_>) -> Result<()> {
            for table in tables {
                let ids = Int64Array::from_iter_values(0..self.parents);
                if table.name == "parents" {
                    let names =
                        StringArray::from_iter_values(ids.iter().map(|i| format!("p{i:?}")));
                    out.insert(table, vec![Arc::new(ids), Arc::new(names)])?;
                } else {
                    out.insert(table, vec![Arc::new(ids)])?;
                }
            }
            Ok(())
        }
        fn relation(&mut self, table: &Table) -> Option<Box<dyn Relation>> {
            (table.name == "children").then(|| Box::new(Children) as Box<dyn Relation>)
        }
    }

    fn batches(deterministic: bool) -> HashMap<String, RecordBatch> {
        let mut messages = Vec::new();
        let options = SyncOptions {
            deterministic_cq_id: deterministic,
            ..SyncOptions::default()
        };
        run_sync(&mut Family { parents: 3 }, &options, &mut messages).unwrap();
        let mut out = HashMap::new();
        for m in messages {
            if let Message::Insert(b) = m {
                let name = b.schema().metadata()[crate::metadata::TABLE_NAME].clone();
                assert!(out.insert(name, b).is_none());
            }
        }
        out
    }

    fn uuids(batch: &RecordBatch, column: &str) -> Vec<Option<Vec<u8>>> {
        let a = batch
            .column_by_name(column)
            .unwrap()
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .unwrap();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_vec()))
            .collect()
    }

    #[test]
    fn child_rows_point_at_their_parents_ids() {
        let b = batches(false);
        let parents = uuids(&b["parents"], "_cq_id");
        assert!(
            uuids(&b["parents"], "_cq_parent_id")
                .iter()
                .all(Option::is_none)
        );
        let children = &b["children"];
        assert_eq!(children.num_rows(), 6);
        let parent_of = uuids(children, "_cq_parent_id");
        let parent_col = children
            .column_by_name("parent")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        for (row, id) in parent_of.iter().enumerate() {
            assert_eq!(
                id,
                &parents[parent_col.value(row) as usize],
                "child row {row}"
            );
        }
        // Random ids are v4 and distinct.
        let mut all: Vec<_> = parents
            .iter()
            .chain(&uuids(children, "_cq_id"))
            .cloned()
            .collect();
        assert!(all.iter().all(|id| id.as_ref().unwrap()[6] >> 4 == 4));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 9);
    }

    #[test]
    fn deterministic_ids_repeat_and_random_ids_do_not() {
        let (a, b) = (batches(true), batches(true));
        for table in ["parents", "children"] {
            assert_eq!(
                uuids(&a[table], "_cq_id"),
                uuids(&b[table], "_cq_id"),
                "{table}"
            );
            assert_eq!(uuids(&a[table], "_cq_id")[0].as_ref().unwrap()[6] >> 4, 8);
        }
        // A table without a primary key gets random ids even when deterministic ids are asked for.
        assert_ne!(uuids(&a["loose"], "_cq_id"), uuids(&b["loose"], "_cq_id"));
        let (c, d) = (batches(false), batches(false));
        assert_ne!(
            uuids(&c["parents"], "_cq_id"),
            uuids(&d["parents"], "_cq_id")
        );
    }

    #[test]
    fn id_columns_lead_and_cq_id_is_the_key_of_a_table_without_one() {
        let b = batches(false);
        let fields = |t: &str| {
            let s = b[t].schema();
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), Column::from_field(f).primary_key))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields("loose"),
            [
                ("_cq_id".to_string(), true),
                ("_cq_parent_id".to_string(), false),
                ("x".to_string(), false)
            ]
        );
        assert_eq!(fields("parents")[0], ("_cq_id".to_string(), false));
    }

    #[test]
    fn a_child_table_without_a_relation_is_an_error() {
        struct NoRelation(Family);
        impl Plugin for NoRelation {
            type Spec = serde_json::Value;
            fn info() -> Info {
                Family::info()
            }
            fn new(_: serde_json::Value) -> Result<Self> {
                Ok(NoRelation(Family { parents: 1 }))
            }
        }
        impl Source for NoRelation {
            fn tables(&self) -> Vec<Table> {
                self.0.tables()
            }
            fn sync(&mut self, tables: &[Table], out: &mut SyncContext<'_>) -> Result<()> {
                self.0.sync(tables, out)
            }
        }
        let err = run_sync(
            &mut NoRelation(Family { parents: 1 }),
            &SyncOptions::default(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("no relation that resolves it"),
            "{err}"
        );
    }

    /// CloudQuery's glob: `*` only (`?` is literal), anchored at both ends.
    #[test]
    fn star_globs_match_as_cloudquery_matches() {
        for (pattern, name, want) in [
            ("*", "anything", true),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "ac", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("abc", "abcd", false),
            ("**", "x", true),
            ("t?st", "test", false),
            ("t?st", "t?st", true),
        ] {
            assert_eq!(
                matches_star_glob(pattern, name),
                want,
                "{pattern:?} {name:?}"
            );
        }
    }

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
        assert_eq!(
            err.message,
            "table `a_child` is a child of `a`, which is not selected; select `a` too, or add `a_child` to `skip_tables`"
        );
        // The pattern at fault, as data: the skip pattern that removed the parent.
        let err = selection(&all, &s(&["b", "a*"]), &s(&["x*", "a"]), false);
        assert!(matches!(
            err,
            Err(SelectionError::NoMatch {
                list: PatternList::SkipTables,
                index: 0,
                ..
            })
        ));
        let err = selection(&all, &s(&["b", "a*"]), &s(&["b", "a"]), false);
        assert!(matches!(
            err,
            Err(SelectionError::OrphanChild {
                list: PatternList::SkipTables,
                index: 1,
                ..
            })
        ));
        let err = selection(&all, &s(&["b", "a_child"]), &[], false);
        assert!(matches!(
            err,
            Err(SelectionError::OrphanChild {
                list: PatternList::Tables,
                index: 1,
                ..
            })
        ));
    }
}
