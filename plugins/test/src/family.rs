//! A parent/child pair, to exercise relations: `test_parents` has `num_rows` rows (`id` = row
//! number, `name` = "parent_" + id) and each parent has `children_per_parent` rows in
//! `test_children` (`parent_id` = the parent's id, `n` = 0.., `label` = "<parent_id>.<n>").
//! The children are resolved from each batch of parents, as an API source resolves a detail
//! endpoint per listed item.

use std::sync::Arc;

use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use quarry_sdk::{ChildRows, Column, DataType, Error, Relation, Result, Table};

pub const PARENTS: &str = "test_parents";
pub const CHILDREN: &str = "test_children";

pub fn parents() -> Table {
    Table::new(PARENTS)
        .describe("Parent rows; each has `children_per_parent` rows in test_children")
        .column(
            Column::new("id", DataType::Int64)
                .primary_key()
                .describe("The row number"),
        )
        .column(Column::new("name", DataType::Utf8).describe("\"parent_\" and the id"))
}

pub fn children() -> Table {
    Table::new(CHILDREN)
        .describe("Rows resolved per parent row of test_parents")
        .child_of(PARENTS)
        .column(
            Column::new("parent_id", DataType::Int64)
                .primary_key()
                .describe("The parent's id"),
        )
        .column(
            Column::new("n", DataType::Int32)
                .primary_key()
                .describe("The child's number under its parent"),
        )
        .column(Column::new("label", DataType::Utf8).describe("\"<parent_id>.<n>\""))
}

pub fn parent_columns(start: u64, end: u64) -> Vec<Arc<dyn Array>> {
    let ids = Int64Array::from_iter_values(start as i64..end as i64);
    let names = StringArray::from_iter_values((start..end).map(|i| format!("parent_{i}")));
    vec![Arc::new(ids), Arc::new(names)]
}

/// Resolves `test_children` from a batch of `test_parents`.
pub struct Children {
    pub per_parent: u32,
}

impl Relation for Children {
    fn resolve(&mut self, parents: &RecordBatch, out: &mut ChildRows) -> Result<()> {
        let ids = parents
            .column_by_name("id")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| Error::internal("test_parents has no Int64 `id` column"))?;
        let per = self.per_parent as usize;
        let mut rows = Vec::with_capacity(ids.len() * per);
        let (mut parent_ids, mut ns, mut labels) = (
            Vec::with_capacity(ids.len() * per),
            Vec::with_capacity(ids.len() * per),
            Vec::with_capacity(ids.len() * per),
        );
        for row in 0..ids.len() {
            for n in 0..self.per_parent as i32 {
                rows.push(row as u32);
                parent_ids.push(ids.value(row));
                ns.push(n);
                labels.push(format!("{}.{n}", ids.value(row)));
            }
        }
        out.push(
            rows,
            vec![
                Arc::new(Int64Array::from(parent_ids)),
                Arc::new(Int32Array::from(ns)),
                Arc::new(StringArray::from(labels)),
            ],
        );
        Ok(())
    }
}
