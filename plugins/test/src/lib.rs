//! Quarry's `test` plugin. As a source it produces synthetic, deterministic rows (the value of
//! every cell is a function of its row number, so a test can check any row it reads back); as a
//! destination it decodes what it is sent and discards it, to measure the rest of the pipeline.
//!
//! `test_increments` is incremental: each sync sends the next `num_rows` rows after the cursor
//! an earlier sync left in the state backend, and moves the cursor after every batch.

mod family;
pub mod keyed;
mod rows;
pub mod types;

use quarry_sdk::{
    Destination, Info, Plugin, RecordBatch, Relation, Result, Source, SyncContext, Table,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// The `test` plugin's `spec:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Rows per table.
    #[serde(default = "default_num_rows")]
    #[schemars(range(min = 0))]
    pub num_rows: u64,
    /// How many `test_rows` tables: `test_rows`, then `test_rows_2`, `test_rows_3`, ...
    #[serde(default = "default_num_tables")]
    #[schemars(range(min = 1, max = 10000))]
    pub num_tables: u32,
    /// Rows per emitted batch.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 1000000))]
    pub batch_size: u64,
    /// Rows of `test_children` per row of `test_parents`.
    #[serde(default = "default_children_per_parent")]
    #[schemars(range(min = 0, max = 1000))]
    pub children_per_parent: u32,
}

fn default_children_per_parent() -> u32 {
    3
}

fn default_num_rows() -> u64 {
    1000
}

fn default_num_tables() -> u32 {
    1
}

fn default_batch_size() -> u64 {
    10_000
}

/// The incremental table, and the key of its cursor (the next row number to send).
const INCREMENTS: &str = "test_increments";

fn cursor(value: Option<String>) -> Result<u64> {
    match value {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            quarry_sdk::Error::internal(format!(
                "the state of `{INCREMENTS}` is `{v}`, not a row number; reset it with `quarry state reset`"
            ))
        }),
    }
}

/// The plugin instance: its spec, and what a destination has discarded.
pub struct TestPlugin {
    spec: Spec,
    discarded_rows: u64,
}

impl Plugin for TestPlugin {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "test",
            env!("CARGO_PKG_VERSION"),
            "Synthetic deterministic rows as a source; discards rows as a destination",
        )
    }

    fn new(spec: Spec) -> Result<Self> {
        Ok(TestPlugin {
            spec,
            discarded_rows: 0,
        })
    }
}

impl Source for TestPlugin {
    fn tables(&self) -> Vec<Table> {
        let mut tables: Vec<Table> = (1..=self.spec.num_tables)
            .map(|n| {
                if n == 1 {
                    rows::table("test_rows")
                } else {
                    rows::table(&format!("test_rows_{n}"))
                }
            })
            .collect();
        tables.push(types::table());
        tables.push(rows::table(INCREMENTS).incremental());
        tables.push(family::parents());
        tables.push(family::children());
        tables
    }

    fn sync(&mut self, tables: &[Table], out: &mut SyncContext<'_>) -> Result<()> {
        let (rows, batch) = (self.spec.num_rows, self.spec.batch_size.max(1));
        for table in tables {
            let incremental = table.name == INCREMENTS;
            let first = match incremental {
                true => cursor(out.state_get(INCREMENTS)?)?,
                false => 0,
            };
            let (mut start, rows) = (first, first + rows);
            while start < rows {
                let end = (start + batch).min(rows);
                let columns = match table.name.as_str() {
                    types::NAME => types::columns(start, end)?,
                    family::PARENTS => family::parent_columns(start, end),
                    _ => rows::columns(start, end)?,
                };
                out.insert(table, columns)?;
                if incremental {
                    out.state_set(INCREMENTS, &end.to_string())?;
                }
                start = end;
            }
        }
        Ok(())
    }

    fn relation(&mut self, table: &Table) -> Option<Box<dyn Relation>> {
        (table.name == family::CHILDREN).then(|| {
            Box::new(family::Children {
                per_parent: self.spec.children_per_parent,
            }) as Box<dyn Relation>
        })
    }
}

impl Destination for TestPlugin {
    fn migrate_table(&mut self, _table: &Table, _force: bool) -> Result<()> {
        Ok(())
    }

    fn insert(&mut self, _table: &Table, batch: RecordBatch) -> Result<()> {
        self.discarded_rows += batch.num_rows() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        quarry_sdk::log::debug("discarded", &[("rows", &self.discarded_rows.to_string())]);
        Ok(())
    }
}

quarry_sdk::export_source_and_destination!(TestPlugin);

#[cfg(test)]
mod tests {
    use quarry_sdk::{Message, SyncOptions, run_sync};

    use super::*;

    fn sync(spec: Spec) -> Vec<RecordBatch> {
        let mut plugin = TestPlugin::new(spec).unwrap();
        let mut messages = Vec::new();
        run_sync(&mut plugin, &SyncOptions::default(), &mut messages).unwrap();
        messages
            .into_iter()
            .filter_map(|m| match m {
                Message::Insert(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn batches_cover_every_row_of_every_table_once() {
        let batches = sync(Spec {
            num_rows: 25,
            num_tables: 2,
            batch_size: 10,
            children_per_parent: 2,
        });
        let per_table = |name: &str| -> Vec<usize> {
            batches
                .iter()
                .filter(|b| b.schema().metadata()["cq:table_name"] == name)
                .map(|b| b.num_rows())
                .collect()
        };
        assert_eq!(per_table("test_rows"), [10, 10, 5]);
        assert_eq!(per_table("test_rows_2"), [10, 10, 5]);
        assert_eq!(per_table("test_all_types"), [10, 10, 5]);
        assert_eq!(per_table("test_parents"), [10, 10, 5]);
        assert_eq!(per_table("test_children"), [20, 20, 10]);
    }

    #[test]
    fn the_incremental_table_continues_after_its_cursor() {
        let spec = Spec {
            num_rows: 25,
            num_tables: 1,
            batch_size: 10,
            children_per_parent: 0,
        };
        let options = SyncOptions {
            tables: vec![INCREMENTS.into()],
            ..SyncOptions::default()
        };
        let mut plugin = TestPlugin::new(spec).unwrap();
        let mut messages = vec![Message::State {
            key: INCREMENTS.into(),
            value: "100".into(),
        }];
        run_sync(&mut plugin, &options, &mut messages).unwrap();
        let ids: Vec<i64> = messages
            .iter()
            .filter_map(|m| match m {
                Message::Insert(b) => Some(b),
                _ => None,
            })
            .flat_map(|b| {
                let id = b.column_by_name("id").unwrap();
                arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(id)
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ids, (100..125).collect::<Vec<i64>>());
        let cursors: Vec<&str> = messages
            .iter()
            .filter_map(|m| match m {
                Message::State { value, .. } => Some(value.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(cursors, ["100", "110", "120", "125"]);
    }
}
