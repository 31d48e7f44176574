//! `hackernews_items`: every field of an item as the API sends it.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, TimestampMicrosecondArray};
use quarry_sdk::{Column, DataType, Field, Result, Table, TimeUnit};
use serde::Deserialize;

/// An item, as `/v0/item/<id>.json` sends it; every field but `id` may be missing.
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    pub id: i64,
    pub deleted: Option<bool>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub by: Option<String>,
    pub time: Option<i64>,
    pub text: Option<String>,
    pub dead: Option<bool>,
    pub parent: Option<i64>,
    pub poll: Option<i64>,
    pub kids: Option<Vec<i64>>,
    pub url: Option<String>,
    pub score: Option<i64>,
    pub title: Option<String>,
    pub parts: Option<Vec<i64>>,
    pub descendants: Option<i64>,
}

fn ids() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int64, true)))
}

pub fn table() -> Table {
    Table::new(crate::TABLE)
        .describe(
            "Stories, comments, jobs, polls and poll options (https://github.com/HackerNews/API)",
        )
        .incremental()
        .column(
            Column::new("id", DataType::Int64)
                .primary_key()
                .incremental_key(),
        )
        .column(Column::new("deleted", DataType::Boolean))
        .column(Column::new("type", DataType::Utf8))
        .column(Column::new("by", DataType::Utf8))
        .column(Column::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ))
        .column(Column::new("text", DataType::Utf8))
        .column(Column::new("dead", DataType::Boolean))
        .column(Column::new("parent", DataType::Int64))
        .column(Column::new("poll", DataType::Int64))
        .column(Column::new("kids", ids()))
        .column(Column::new("url", DataType::Utf8))
        .column(Column::new("score", DataType::Int64))
        .column(Column::new("title", DataType::Utf8))
        .column(Column::new("parts", ids()))
        .column(Column::new("descendants", DataType::Int64))
}

/// Items gathered into columns.
#[derive(Default)]
pub struct Rows {
    items: Vec<Item>,
}

impl Rows {
    pub fn push(&mut self, item: Item) {
        self.items.push(item);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn finish(self) -> Result<Vec<ArrayRef>> {
        let items = &self.items;
        let int = |f: fn(&Item) -> Option<i64>| -> ArrayRef {
            let mut b = Int64Builder::with_capacity(items.len());
            items.iter().for_each(|i| b.append_option(f(i)));
            Arc::new(b.finish())
        };
        let flag = |f: fn(&Item) -> Option<bool>| -> ArrayRef {
            let mut b = BooleanBuilder::with_capacity(items.len());
            items.iter().for_each(|i| b.append_option(f(i)));
            Arc::new(b.finish())
        };
        let text = |f: fn(&Item) -> Option<&str>| -> ArrayRef {
            let mut b = StringBuilder::new();
            items.iter().for_each(|i| b.append_option(f(i)));
            Arc::new(b.finish())
        };
        let list = |f: fn(&Item) -> Option<&[i64]>| -> ArrayRef {
            let mut b = ListBuilder::new(Int64Builder::new());
            for i in items {
                match f(i) {
                    Some(v) => b.append_value(v.iter().map(|x| Some(*x))),
                    None => b.append_null(),
                }
            }
            Arc::new(b.finish())
        };
        let time = TimestampMicrosecondArray::from_iter(
            items
                .iter()
                .map(|i| i.time.map(|t| t.saturating_mul(1_000_000))),
        )
        .with_timezone("UTC");
        Ok(vec![
            int(|i| Some(i.id)),
            flag(|i| i.deleted),
            text(|i| i.kind.as_deref()),
            text(|i| i.by.as_deref()),
            Arc::new(time),
            text(|i| i.text.as_deref()),
            flag(|i| i.dead),
            int(|i| i.parent),
            int(|i| i.poll),
            list(|i| i.kids.as_deref()),
            text(|i| i.url.as_deref()),
            int(|i| i.score),
            text(|i| i.title.as_deref()),
            list(|i| i.parts.as_deref()),
            int(|i| i.descendants),
        ])
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::RecordBatch;

    use super::*;

    /// Every recorded item of the fixtures parses, and the rows fit the table's schema.
    #[test]
    fn every_recorded_item_becomes_a_row() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/hackernews/v0/item"
        );
        let mut rows = Rows::default();
        let mut kinds = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let item: Option<Item> = serde_json::from_str(&text).unwrap();
            let item = item.unwrap();
            kinds.insert(item.kind.clone().unwrap_or_default());
            rows.push(item);
        }
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            ["comment", "job", "poll", "pollopt", "story"]
        );
        let n = rows.items.len();
        let batch = RecordBatch::try_new(table().schema(), rows.finish().unwrap()).unwrap();
        assert_eq!(batch.num_rows(), n);
        let deleted = batch.column_by_name("deleted").unwrap();
        assert!(deleted.null_count() < n, "some items are deleted");
        let absent: Option<Item> = serde_json::from_str("null").unwrap();
        assert!(absent.is_none(), "the API's `null` is no item");
    }
}
