//! Per-destination batching: rows of a table are gathered until `batch_size` rows or
//! `batch_size_bytes` bytes are reached (or `batch_timeout` passes), so that a destination sees
//! batches of the size it works best with whatever the source emits. A batch larger than the
//! limit is split into zero-copy slices; only small batches are copied, once, when coalesced.

use std::collections::HashMap;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_select::concat::concat_batches;
use tokio::time::Instant;

/// The limits of one destination's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub rows: usize,
    pub bytes: usize,
    pub timeout: Duration,
}

impl Limits {
    /// CloudQuery's defaults: 10,000 rows, 100 MB, 60 s.
    pub const DEFAULT: Limits = Limits {
        rows: 10_000,
        bytes: 100 << 20,
        timeout: Duration::from_secs(60),
    };
}

struct Pending {
    batches: Vec<RecordBatch>,
    rows: usize,
    bytes: usize,
    since: Instant,
}

/// Gathers one destination's rows per table.
pub struct Batcher {
    limits: Limits,
    pending: HashMap<String, Pending>,
}

impl Batcher {
    pub fn new(limits: Limits) -> Self {
        let limits = Limits {
            rows: limits.rows.max(1),
            bytes: limits.bytes.max(1),
            ..limits
        };
        Batcher {
            limits,
            pending: HashMap::new(),
        }
    }

    /// Adds rows of `table`; returns the batches that are ready to write, in order.
    pub fn push(&mut self, table: &str, batch: RecordBatch) -> Result<Vec<RecordBatch>, String> {
        let mut ready = Vec::new();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let pending = self.pending.get(table);
            let room = self.limits.rows - pending.map_or(0, |p| p.rows);
            let take = room.min(batch.num_rows() - offset);
            let slice = if offset == 0 && take == batch.num_rows() {
                batch.clone()
            } else {
                batch.slice(offset, take)
            };
            offset += take;
            let bytes = slice.get_array_memory_size();
            let entry = self
                .pending
                .entry(table.to_string())
                .or_insert_with(|| Pending {
                    batches: Vec::new(),
                    rows: 0,
                    bytes: 0,
                    since: Instant::now(),
                });
            entry.rows += slice.num_rows();
            entry.bytes += bytes;
            entry.batches.push(slice);
            if entry.rows >= self.limits.rows || entry.bytes >= self.limits.bytes {
                ready.extend(self.take(table)?);
            }
        }
        Ok(ready)
    }

    /// The pending rows of `table` as one batch, if there are any.
    pub fn take(&mut self, table: &str) -> Result<Option<RecordBatch>, String> {
        let Some(pending) = self.pending.remove(table) else {
            return Ok(None);
        };
        match pending.batches.len() {
            0 => Ok(None),
            // A single batch goes on as it came: no copy.
            1 => Ok(pending.batches.into_iter().next()),
            _ => concat_batches(pending.batches[0].schema_ref(), &pending.batches)
                .map(Some)
                .map_err(|e| format!("table `{table}`: cannot combine batches: {e}")),
        }
    }

    /// Every table's pending rows, in table-name order.
    pub fn take_all(&mut self) -> Result<Vec<RecordBatch>, String> {
        self.take_where(|_| true)
    }

    /// The tables whose oldest pending rows have waited `batch_timeout`.
    pub fn take_expired(&mut self, now: Instant) -> Result<Vec<RecordBatch>, String> {
        let timeout = self.limits.timeout;
        self.take_where(|p| now.duration_since(p.since) >= timeout)
    }

    fn take_where(&mut self, due: impl Fn(&Pending) -> bool) -> Result<Vec<RecordBatch>, String> {
        let mut tables: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| due(p))
            .map(|(t, _)| t.clone())
            .collect();
        tables.sort();
        let mut out = Vec::new();
        for table in tables {
            out.extend(self.take(&table)?);
        }
        Ok(out)
    }

    /// When the oldest pending rows will have waited `batch_timeout`.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.since + self.limits.timeout)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::Int64Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(range: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))]).unwrap()
    }

    fn ids(batches: &[RecordBatch]) -> Vec<Vec<i64>> {
        batches
            .iter()
            .map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    fn limits(rows: usize) -> Limits {
        Limits {
            rows,
            ..Limits::DEFAULT
        }
    }

    #[test]
    fn small_batches_are_coalesced_and_large_ones_split() {
        let mut b = Batcher::new(limits(4));
        assert!(b.push("t", batch(0..3)).unwrap().is_empty());
        assert_eq!(
            ids(&b.push("t", batch(3..13)).unwrap()),
            [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9, 10, 11]]
        );
        assert_eq!(ids(&b.take_all().unwrap()), [vec![12]]);
        assert!(b.take_all().unwrap().is_empty());
    }

    #[test]
    fn tables_are_batched_separately() {
        let mut b = Batcher::new(limits(2));
        assert!(b.push("a", batch(0..1)).unwrap().is_empty());
        assert!(b.push("b", batch(10..11)).unwrap().is_empty());
        assert_eq!(ids(&b.push("a", batch(1..2)).unwrap()), [vec![0, 1]]);
        assert_eq!(ids(&b.take_all().unwrap()), [vec![10]]);
    }

    #[test]
    fn a_byte_limit_and_a_timeout_also_release_rows() {
        let mut b = Batcher::new(Limits {
            rows: 1_000,
            bytes: 1,
            timeout: Duration::from_secs(60),
        });
        assert_eq!(ids(&b.push("t", batch(0..2)).unwrap()), [vec![0, 1]]);

        let mut b = Batcher::new(Limits {
            rows: 1_000,
            bytes: 1 << 30,
            timeout: Duration::from_secs(5),
        });
        b.push("t", batch(0..2)).unwrap();
        let deadline = b.deadline().unwrap();
        assert!(
            b.take_expired(deadline - Duration::from_secs(1))
                .unwrap()
                .is_empty()
        );
        assert_eq!(ids(&b.take_expired(deadline).unwrap()), [vec![0, 1]]);
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn a_batch_of_exactly_the_limit_passes_through_uncopied() {
        let mut b = Batcher::new(limits(3));
        let input = batch(0..3);
        let out = b.push("t", input.clone()).unwrap();
        assert_eq!(out.len(), 1);
        assert!(Arc::ptr_eq(out[0].column(0), input.column(0)));
    }
}
