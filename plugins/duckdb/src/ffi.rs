//! A small safe face over DuckDB's C API (libduckdb-sys, no Rust-side Arrow of its own): open a
//! database, run SQL, read a result as Arrow, and append Arrow batches through DuckDB's own Arrow
//! importer and its appender. Arrow crosses as the C Data Interface, whose layout is fixed, so
//! our arrow-rs arrays go in and come out without copies on our side.

use std::ffi::{CStr, CString, c_char};
use std::ptr;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Schema};
use libduckdb_sys as sys;

/// A DuckDB error, as its message.
#[derive(Debug)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, DbError>;

fn cstring(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| DbError(format!("a NUL byte in {text:?}")))
}

/// The message of an error-data handle, which it then destroys. `None` if it holds no error.
fn take_error(mut error: sys::duckdb_error_data) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: `error` is a live handle returned by DuckDB; it is destroyed exactly once here.
    unsafe {
        let message = sys::duckdb_error_data_has_error(error).then(|| {
            let text = sys::duckdb_error_data_message(error);
            if text.is_null() {
                "unknown DuckDB error".to_string()
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        });
        sys::duckdb_destroy_error_data(&mut error);
        message
    }
}

/// An open database file and one connection to it.
pub struct Database {
    db: sys::duckdb_database,
    conn: sys::duckdb_connection,
}

// SAFETY: DuckDB's database and connection handles may be used from any thread, one call at a
// time; `Database` is only ever used through `&mut` or behind the plugin's mutex.
unsafe impl Send for Database {}

impl Database {
    /// Opens (or creates) the database at `path` with `options` (`name`, `value`) set.
    pub fn open(path: &str, options: &[(&str, &str)]) -> Result<Database> {
        let c_path = cstring(path)?;
        let mut config: sys::duckdb_config = ptr::null_mut();
        let mut db: sys::duckdb_database = ptr::null_mut();
        let mut error: *mut c_char = ptr::null_mut();
        // SAFETY: every out-pointer is a valid local; the config is destroyed after use, the
        // error string freed with duckdb_free, as the C API documents.
        unsafe {
            if sys::duckdb_create_config(&mut config) != sys::duckdb_state_DuckDBSuccess {
                return Err(DbError("cannot create a DuckDB configuration".into()));
            }
            for (name, value) in options {
                let (n, v) = (cstring(name)?, cstring(value)?);
                if sys::duckdb_set_config(config, n.as_ptr(), v.as_ptr())
                    != sys::duckdb_state_DuckDBSuccess
                {
                    sys::duckdb_destroy_config(&mut config);
                    return Err(DbError(format!("DuckDB does not accept {name}={value}")));
                }
            }
            let state = sys::duckdb_open_ext(c_path.as_ptr(), &mut db, config, &mut error);
            sys::duckdb_destroy_config(&mut config);
            if state != sys::duckdb_state_DuckDBSuccess {
                let message = if error.is_null() {
                    "unknown error".to_string()
                } else {
                    let m = CStr::from_ptr(error).to_string_lossy().into_owned();
                    sys::duckdb_free(error.cast());
                    m
                };
                return Err(DbError(message));
            }
            let mut conn: sys::duckdb_connection = ptr::null_mut();
            if sys::duckdb_connect(db, &mut conn) != sys::duckdb_state_DuckDBSuccess {
                sys::duckdb_close(&mut db);
                return Err(DbError("cannot connect to the database".into()));
            }
            Ok(Database { db, conn })
        }
    }

    /// Runs `sql` (one or more statements) and returns its result.
    fn query(&mut self, sql: &str) -> Result<QueryResult> {
        let c_sql = cstring(sql)?;
        // SAFETY: `duckdb_result` is a plain C struct that duckdb_query fills; it is destroyed
        // by `QueryResult`'s Drop whether or not the query succeeded, as the API requires.
        unsafe {
            let mut result: sys::duckdb_result = std::mem::zeroed();
            let state = sys::duckdb_query(self.conn, c_sql.as_ptr(), &mut result);
            let result = QueryResult(result);
            if state != sys::duckdb_state_DuckDBSuccess {
                let mut r = result;
                let text = sys::duckdb_result_error(&mut r.0);
                let message = if text.is_null() {
                    "unknown error".to_string()
                } else {
                    CStr::from_ptr(text).to_string_lossy().into_owned()
                };
                return Err(DbError(message));
            }
            Ok(result)
        }
    }

    /// Runs statements whose results do not matter.
    pub fn execute(&mut self, sql: &str) -> Result<()> {
        self.query(sql).map(|_| ())
    }

    /// Runs a query and returns every value as text, as DuckDB casts it to `VARCHAR` (`None` for
    /// SQL NULL). For small catalog queries and for people.
    pub fn query_text(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let sql = sql.trim().trim_end_matches(';');
        let mut result = self.query(&format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})"))?;
        let mut rows = Vec::new();
        // SAFETY: indexes stay within the result's column and row counts; strings returned by
        // duckdb_value_varchar are freed with duckdb_free.
        unsafe {
            let columns = sys::duckdb_column_count(&mut result.0);
            let count = sys::duckdb_row_count(&mut result.0);
            for row in 0..count {
                let mut values = Vec::with_capacity(columns as usize);
                for col in 0..columns {
                    if sys::duckdb_value_is_null(&mut result.0, col, row) {
                        values.push(None);
                        continue;
                    }
                    let text = sys::duckdb_value_varchar(&mut result.0, col, row);
                    if text.is_null() {
                        values.push(None);
                    } else {
                        values.push(Some(CStr::from_ptr(text).to_string_lossy().into_owned()));
                        sys::duckdb_free(text.cast());
                    }
                }
                rows.push(values);
            }
        }
        Ok(rows)
    }

    /// Runs a query and returns its rows as Arrow batches, as DuckDB exports them.
    pub fn query_arrow(&mut self, sql: &str) -> Result<Vec<RecordBatch>> {
        let mut result = self.query(sql)?;
        // SAFETY: logical types, names and options come from this live result and are
        // destroyed once; every chunk fetched is destroyed after it is exported. The exported
        // C structs are moved into arrow-rs, which calls their release callbacks.
        unsafe {
            let columns = sys::duckdb_column_count(&mut result.0);
            let mut options = sys::duckdb_result_get_arrow_options(&mut result.0);
            let mut types: Vec<sys::duckdb_logical_type> = (0..columns)
                .map(|c| sys::duckdb_column_logical_type(&mut result.0, c))
                .collect();
            let mut names: Vec<*const c_char> = (0..columns)
                .map(|c| sys::duckdb_column_name(&mut result.0, c))
                .collect();
            let mut c_schema = FFI_ArrowSchema::empty();
            let error = sys::duckdb_to_arrow_schema(
                options,
                types.as_mut_ptr(),
                names.as_mut_ptr(),
                columns,
                (&mut c_schema as *mut FFI_ArrowSchema).cast::<sys::ArrowSchema>(),
            );
            for t in &mut types {
                sys::duckdb_destroy_logical_type(t);
            }
            if let Some(message) = take_error(error) {
                sys::duckdb_destroy_arrow_options(&mut options);
                return Err(DbError(message));
            }
            let data_type = DataType::try_from(&c_schema)
                .map_err(|e| DbError(format!("DuckDB's Arrow schema: {e}")))?;
            let DataType::Struct(fields) = data_type.clone() else {
                sys::duckdb_destroy_arrow_options(&mut options);
                return Err(DbError("DuckDB's Arrow schema is not a struct".into()));
            };
            let schema = std::sync::Arc::new(Schema::new(fields));
            let mut batches = Vec::new();
            loop {
                let mut chunk = sys::duckdb_fetch_chunk(result.0);
                if chunk.is_null() {
                    break;
                }
                let mut c_array = FFI_ArrowArray::empty();
                let error = sys::duckdb_data_chunk_to_arrow(
                    options,
                    chunk,
                    (&mut c_array as *mut FFI_ArrowArray).cast::<sys::ArrowArray>(),
                );
                sys::duckdb_destroy_data_chunk(&mut chunk);
                if let Some(message) = take_error(error) {
                    sys::duckdb_destroy_arrow_options(&mut options);
                    return Err(DbError(message));
                }
                let data = from_ffi(c_array, &c_schema)
                    .map_err(|e| DbError(format!("importing DuckDB's Arrow data: {e}")))?;
                let array = StructArray::from(data);
                batches.push(
                    RecordBatch::from(array)
                        .with_schema(schema.clone())
                        .map_err(|e| {
                            DbError(format!(
                                "DuckDB's Arrow data does not match its schema: {e}"
                            ))
                        })?,
                );
            }
            sys::duckdb_destroy_arrow_options(&mut options);
            Ok(batches)
        }
    }

    /// Appends `batch` to `[catalog.]schema.table` through DuckDB's Arrow importer, at most one
    /// vector (2048 rows) per data chunk. DuckDB casts each column to the table's type.
    /// Everything is written when this returns.
    pub fn append(
        &mut self,
        catalog: Option<&str>,
        schema: &str,
        table: &str,
        batch: &RecordBatch,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (c_schema_name, c_table) = (cstring(schema)?, cstring(table)?);
        let c_catalog = catalog.map(cstring).transpose()?;
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let struct_type = DataType::Struct(fields.into());
        let mut c_schema = FFI_ArrowSchema::try_from(&struct_type)
            .map_err(|e| DbError(format!("exporting the batch's Arrow schema: {e}")))?;
        // SAFETY: the appender, converted schema and chunks are created and destroyed here, in
        // the C API's order; each exported array is handed to DuckDB, which takes ownership.
        unsafe {
            let mut converted: sys::duckdb_arrow_converted_schema = ptr::null_mut();
            let error = sys::duckdb_schema_from_arrow(
                self.conn,
                (&mut c_schema as *mut FFI_ArrowSchema).cast::<sys::ArrowSchema>(),
                &mut converted,
            );
            if let Some(message) = take_error(error) {
                return Err(DbError(message));
            }
            let mut appender: sys::duckdb_appender = ptr::null_mut();
            if sys::duckdb_appender_create_ext(
                self.conn,
                c_catalog.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
                c_schema_name.as_ptr(),
                c_table.as_ptr(),
                &mut appender,
            ) != sys::duckdb_state_DuckDBSuccess
            {
                let message = appender_error(appender);
                sys::duckdb_appender_destroy(&mut appender);
                sys::duckdb_destroy_arrow_converted_schema(&mut converted);
                return Err(DbError(message));
            }
            let rows = sys::duckdb_vector_size() as usize;
            let mut outcome = Ok(());
            let mut offset = 0;
            while offset < batch.num_rows() && outcome.is_ok() {
                let len = rows.min(batch.num_rows() - offset);
                let slice = StructArray::from(batch.slice(offset, len));
                offset += len;
                let mut c_array = FFI_ArrowArray::new(&slice.to_data());
                let mut chunk: sys::duckdb_data_chunk = ptr::null_mut();
                let error = sys::duckdb_data_chunk_from_arrow(
                    self.conn,
                    (&mut c_array as *mut FFI_ArrowArray).cast::<sys::ArrowArray>(),
                    converted,
                    &mut chunk,
                );
                if let Some(message) = take_error(error) {
                    outcome = Err(DbError(message));
                    break;
                }
                if sys::duckdb_append_data_chunk(appender, chunk) != sys::duckdb_state_DuckDBSuccess
                {
                    outcome = Err(DbError(appender_error(appender)));
                }
                sys::duckdb_destroy_data_chunk(&mut chunk);
            }
            if outcome.is_ok()
                && sys::duckdb_appender_close(appender) != sys::duckdb_state_DuckDBSuccess
            {
                outcome = Err(DbError(appender_error(appender)));
            }
            sys::duckdb_appender_destroy(&mut appender);
            sys::duckdb_destroy_arrow_converted_schema(&mut converted);
            outcome
        }
    }
}

/// # Safety
/// `appender` is null or a live appender.
unsafe fn appender_error(appender: sys::duckdb_appender) -> String {
    if appender.is_null() {
        return "cannot create an appender".into();
    }
    // SAFETY: the caller guarantees a live appender; the string belongs to it.
    let text = unsafe { sys::duckdb_appender_error(appender) };
    if text.is_null() {
        "the appender failed".into()
    } else {
        // SAFETY: a NUL-terminated string owned by the appender, read before it is destroyed.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: both handles were opened by `open` and are closed once, connection first.
        unsafe {
            sys::duckdb_disconnect(&mut self.conn);
            sys::duckdb_close(&mut self.db);
        }
    }
}

/// A query's result, destroyed when dropped.
struct QueryResult(sys::duckdb_result);

impl Drop for QueryResult {
    fn drop(&mut self) {
        // SAFETY: the result was filled by duckdb_query and is destroyed once.
        unsafe { sys::duckdb_destroy_result(&mut self.0) }
    }
}

/// `name` quoted as a DuckDB identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a DuckDB string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn arrow_batches_go_in_through_the_appender_and_come_back_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut db = Database::open(path.to_str().unwrap(), &[]).unwrap();
        db.execute("CREATE TABLE t (id BIGINT, name VARCHAR)")
            .unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let rows = 5000;
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows)),
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| (i % 7 != 0).then(|| format!("n{i}"))),
                )),
            ],
        )
        .unwrap();
        db.append(None, "main", "t", &batch).unwrap();
        let text = db
            .query_text("SELECT count(*), sum(id), count(name) FROM t")
            .unwrap();
        assert_eq!(
            text,
            vec![vec![
                Some("5000".into()),
                Some("12497500".into()),
                Some("4285".into())
            ]]
        );
        let back = db.query_arrow("SELECT id FROM t ORDER BY id").unwrap();
        let ids: Vec<i64> = back
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, (0..rows).collect::<Vec<_>>());
        let error = db.execute("SELECT * FROM missing").unwrap_err();
        assert!(error.0.contains("missing"), "{error}");
    }
}
