//! `_cq_id` and `_cq_parent_id`: the row identity columns every source table carries, with
//! CloudQuery's names, types and rules.
//!
//! - Every table gets `_cq_id` (uuid, not null, unique) and `_cq_parent_id` (uuid, null for a
//!   top-level table) as its first two columns. A table that declares no primary key gets
//!   `_cq_id` as its primary key, so overwrite mode has something to upsert on.
//! - `_cq_id` is a random UUID (version 4) per row, or, with `deterministic_cq_id: true` and a
//!   primary key, a UUID derived from the primary-key values (version 8, from SHA-256), so the same
//!   row keeps its id from one sync to the next.
//! - A child row's `_cq_parent_id` is its parent row's `_cq_id`.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray};
use arrow_buffer::{Buffer, NullBuffer};
use arrow_data::ArrayData;
use arrow_schema::DataType;
use sha2::{Digest, Sha256};

use crate::{Column, Error, Extension, Result, Table};

/// The row id column.
pub const CQ_ID: &str = "_cq_id";
/// The parent row's id column.
pub const CQ_PARENT_ID: &str = "_cq_parent_id";

/// `table` with `_cq_id` and `_cq_parent_id` in front of its columns (replacing any it declared).
pub fn with_id_columns(table: &Table) -> Table {
    let own: Vec<Column> = table
        .columns
        .iter()
        .filter(|c| c.name != CQ_ID && c.name != CQ_PARENT_ID)
        .cloned()
        .collect();
    let mut id = Column::extension(CQ_ID, Extension::Uuid)
        .not_null()
        .unique()
        .describe("Unique id of the row");
    if !own.iter().any(|c| c.primary_key) {
        id = id.primary_key();
    }
    let parent = Column::extension(CQ_PARENT_ID, Extension::Uuid)
        .describe("The `_cq_id` of the parent row, for a child table");
    let mut columns = vec![id, parent];
    columns.extend(own);
    Table {
        columns,
        ..table.clone()
    }
}

/// Random version-4 UUIDs from a xoshiro256++ generator seeded once from the OS.
pub struct RandomIds {
    state: [u64; 4],
}

impl Default for RandomIds {
    fn default() -> Self {
        // `RandomState` is keyed from the OS's random source (WASI `random` in a component);
        // two of its hashers give 128 bits, which splitmix64 spreads over the generator's state.
        let mut seed = 0u64;
        let mut state = [0u64; 4];
        for (i, word) in state.iter_mut().enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            seed ^= h.finish();
            *word = splitmix64(&mut seed);
        }
        RandomIds { state }
    }
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl RandomIds {
    fn next(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// `rows` fresh ids.
    pub fn ids(&mut self, rows: usize) -> ArrayRef {
        let mut bytes = vec![0u8; rows * 16];
        for id in bytes.chunks_exact_mut(16) {
            id[..8].copy_from_slice(&self.next().to_le_bytes());
            id[8..].copy_from_slice(&self.next().to_le_bytes());
            set_version(id, 4);
        }
        uuids(bytes)
    }
}

fn set_version(id: &mut [u8], version: u8) {
    id[6] = (id[6] & 0x0f) | (version << 4);
    id[8] = (id[8] & 0x3f) | 0x80;
}

fn uuids(bytes: Vec<u8>) -> ArrayRef {
    Arc::new(FixedSizeBinaryArray::new(
        16,
        Buffer::from_vec(bytes),
        None::<NullBuffer>,
    ))
}

/// Ids derived from the primary-key columns `keys` (name and values, any order): SHA-256 over
/// each key's name and value in name order, the first 16 bytes marked as a version-8 UUID.
pub fn deterministic_ids(keys: &[(&str, &ArrayRef)], rows: usize) -> Result<ArrayRef> {
    let mut keys = keys.to_vec();
    keys.sort_by_key(|(name, _)| *name);
    let mut encoders = Vec::with_capacity(keys.len());
    for (name, array) in &keys {
        encoders.push((*name, KeyValues::new(name, array.as_ref())?));
    }
    let mut bytes = vec![0u8; rows * 16];
    let mut scratch = Vec::new();
    for (row, id) in bytes.chunks_exact_mut(16).enumerate() {
        let mut hash = Sha256::new();
        for (name, values) in &encoders {
            hash.update((name.len() as u32).to_le_bytes());
            hash.update(name.as_bytes());
            scratch.clear();
            values.write(row, &mut scratch);
            hash.update((scratch.len() as u32).to_le_bytes());
            hash.update(&scratch);
        }
        id.copy_from_slice(&hash.finalize()[..16]);
        set_version(id, 8);
    }
    Ok(uuids(bytes))
}

/// The canonical bytes of one key column's values.
enum KeyValues<'a> {
    /// Fixed-width values (integers, floats, dates, times, timestamps, decimals): their bytes.
    Fixed(&'a dyn Array, usize, ArrayData),
    Bool(&'a dyn Array),
    Utf8(&'a dyn Array),
    Binary(&'a dyn Array),
}

impl<'a> KeyValues<'a> {
    fn new(name: &str, array: &'a dyn Array) -> Result<Self> {
        let data_type = array.data_type();
        Ok(match data_type {
            DataType::Boolean => KeyValues::Bool(array),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => KeyValues::Utf8(array),
            DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
                KeyValues::Binary(array)
            }
            t if t.primitive_width().is_some() => {
                KeyValues::Fixed(array, t.primitive_width().unwrap_or(0), array.to_data())
            }
            other => {
                return Err(Error::invalid_spec(format!(
                    "deterministic_cq_id: primary-key column `{name}` has type {other}, which \
                     cannot derive an id; turn deterministic_cq_id off for this source"
                )));
            }
        })
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) {
        let array: &dyn Array = match self {
            KeyValues::Fixed(a, ..)
            | KeyValues::Bool(a)
            | KeyValues::Utf8(a)
            | KeyValues::Binary(a) => *a,
        };
        if array.is_null(row) {
            out.push(0xff);
            return;
        }
        out.push(0);
        match self {
            KeyValues::Fixed(_, width, data) => {
                let at = (data.offset() + row) * width;
                out.extend_from_slice(&data.buffers()[0].as_slice()[at..at + width]);
            }
            KeyValues::Bool(a) => out.push(a.as_boolean().value(row) as u8),
            KeyValues::Utf8(a) => out.extend_from_slice(match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().value(row).as_bytes(),
                DataType::LargeUtf8 => a.as_string::<i64>().value(row).as_bytes(),
                _ => a.as_string_view().value(row).as_bytes(),
            }),
            KeyValues::Binary(a) => out.extend_from_slice(match a.data_type() {
                DataType::Binary => a.as_binary::<i32>().value(row),
                DataType::LargeBinary => a.as_binary::<i64>().value(row),
                _ => a.as_fixed_size_binary().value(row),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Python SDK derives the same id (guest-sdk/python/tests/test_sdk.py), so a row keeps
    /// its `_cq_id` whichever SDK its plugin was written with.
    #[test]
    fn an_id_from_one_int64_key_is_the_same_in_every_sdk() {
        let key: ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![1]));
        let ids = deterministic_ids(&[("id", &key)], 1).unwrap();
        let id = ids.as_fixed_size_binary().value(0);
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "81bac35508aa85edbc5c4f9b2e3736cd");
        // A key named outside ASCII: its name's length counts bytes.
        let key: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![7]));
        let ids = deterministic_ids(&[("é", &key)], 1).unwrap();
        let hex: String = ids.as_fixed_size_binary().value(0)[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "4131b48f");
    }
}
