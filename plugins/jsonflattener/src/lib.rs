//! Quarry's `jsonflattener` transformer, CloudQuery's `jsonflattener` (v2.1.21) as a component:
//! every `json` column whose field carries a type schema (`cq:extension:type_schema`, which
//! CloudQuery's SDK writes for JSON columns built from Go structs) gets the first level of its
//! values as columns of their own, `<column>__<snake_case(key)>`, typed from the schema. The JSON
//! column itself stays. Tables are chosen by glob on `cq:table_name`; others pass untouched.
//!
//! Where this differs from CloudQuery, and why, is said where it happens: the key matching and
//! naming in [`flatten`], the values in [`cells`], timestamps in [`timestamp`].

mod caser;
mod cells;
mod flatten;
mod timestamp;

use std::collections::HashMap;

use quarry_sdk::{Error, Info, Plugin, RecordBatch, Result, SchemaRef, Transformer, metadata};
use schemars::JsonSchema;
use serde::Deserialize;

/// The `jsonflattener` transformer's `spec:`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Globs of the tables to flatten (`*` matches any run of characters, and is the only
    /// wildcard). Absent means every table, `["*"]`; an empty list flattens none.
    #[serde(default)]
    pub tables: Option<Vec<String>>,
}

/// The transformer: its table patterns, and what it has learnt about tables and type schemas.
pub struct JsonFlattener {
    tables: Vec<String>,
    /// Whether each table name seen so far matches `tables`.
    matches: HashMap<String, bool>,
    /// The unusable type schemas already logged.
    skipped: flatten::Skipped,
}

impl Plugin for JsonFlattener {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "jsonflattener",
            env!("CARGO_PKG_VERSION"),
            "Flattens the first level of typed JSON columns into columns of their own (CloudQuery's jsonflattener)",
        )
    }

    fn new(spec: Spec) -> Result<Self> {
        Ok(JsonFlattener {
            tables: spec.tables.unwrap_or_else(|| vec!["*".to_string()]),
            matches: HashMap::new(),
            skipped: flatten::Skipped::new(),
        })
    }
}

impl Transformer for JsonFlattener {
    fn transform_schema(&mut self, schema: SchemaRef) -> Result<SchemaRef> {
        // As CloudQuery does: a batch of no rows through the record path, so the schema is
        // exactly what batches of this table will carry.
        Ok(self.apply(RecordBatch::new_empty(schema))?.schema())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        // Batches of no rows are forwarded, as CloudQuery's flattener does.
        Ok(vec![self.apply(batch)?])
    }
}

impl JsonFlattener {
    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let table = batch
            .schema_ref()
            .metadata()
            .get(metadata::TABLE_NAME)
            .cloned()
            .ok_or_else(|| {
                Error::internal(format!(
                    "table name not found in record's metadata (`{}`): jsonflattener needs it \
                     to match `tables`",
                    metadata::TABLE_NAME
                ))
            })?;
        if !self.matches(&table) {
            return Ok(batch);
        }
        flatten::flatten(batch, &table, &mut self.skipped)
    }

    fn matches(&mut self, table: &str) -> bool {
        if let Some(&hit) = self.matches.get(table) {
            return hit;
        }
        let hit = self
            .tables
            .iter()
            .any(|p| quarry_sdk::matches_star_glob(p, table));
        self.matches.insert(table.to_string(), hit);
        hit
    }
}

quarry_sdk::export_transformer!(JsonFlattener);

#[cfg(test)]
mod tests;
