//! Incremental cursors for sources that read rows in the order of a cursor column (a database
//! table `ORDER BY updated_at`): which value may be saved after a batch.

/// The last value of the cursor column read, and the last value whose rows have all been read.
/// Rows come in cursor order, so once a different value arrives every row of the one before is
/// in; the rows of the current value may continue into the next batch, so saving it would skip
/// them after a failure. Save [`OrderedCursor::safe`] after each batch and
/// [`OrderedCursor::last`] once every row has been read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OrderedCursor {
    last: Option<Vec<u8>>,
    safe: Option<String>,
}

impl OrderedCursor {
    /// The cursor column's value (its text) of the next row read.
    pub fn see(&mut self, value: &[u8]) {
        if self.last.as_deref() == Some(value) {
            return;
        }
        if let Some(previous) = self.last.take() {
            self.safe = Some(String::from_utf8_lossy(&previous).into_owned());
        }
        self.last = Some(value.to_vec());
    }

    /// The last value whose rows have all been read, if any.
    pub fn safe(&self) -> Option<&str> {
        self.safe.as_deref()
    }

    /// The last value read: safe to save once the read is complete.
    pub fn last(&self) -> Option<String> {
        self.last
            .as_deref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderedCursor;

    #[test]
    fn only_values_whose_rows_are_all_read_are_safe() {
        let mut cursor = OrderedCursor::default();
        assert_eq!((cursor.safe(), cursor.last()), (None, None));
        for value in ["1", "2", "2"] {
            cursor.see(value.as_bytes());
        }
        assert_eq!(
            (cursor.safe(), cursor.last().as_deref()),
            (Some("1"), Some("2"))
        );
        cursor.see(b"3");
        assert_eq!(cursor.safe(), Some("2"));
    }
}
