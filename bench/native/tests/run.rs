//! The native baseline writes the rows it is asked for, as Parquet, and reports each run.

use std::process::Command;

use parquet::file::reader::{FileReader, SerializedFileReader};

#[test]
fn each_run_writes_every_row_as_parquet_and_prints_its_seconds() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_quarry-bench-native"))
        .args(["2500", "1000", "2"])
        .arg(&out)
        .output()
        .expect("run quarry-bench-native");
    assert!(run.status.success(), "{run:?}");
    let lines: Vec<f64> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| l.parse().expect("seconds"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per measured run: {run:?}");
    assert!(lines.iter().all(|s| *s > 0.0), "{lines:?}");
    // The last run's files (each run starts from an empty directory).
    let mut rows = 0;
    let mut columns = Vec::new();
    for entry in std::fs::read_dir(out.join("test_rows")).expect("the table's directory") {
        let path = entry.expect("an entry").path();
        let reader = SerializedFileReader::new(std::fs::File::open(&path).expect("open"))
            .expect("a Parquet file");
        let metadata = reader.metadata();
        rows += metadata.file_metadata().num_rows();
        columns = metadata
            .file_metadata()
            .schema_descr()
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
    }
    assert_eq!(rows, 2500);
    assert_eq!(
        columns,
        [
            "_cq_source_name",
            "_cq_sync_time",
            "_cq_id",
            "_cq_parent_id",
            "id",
            "name",
            "value",
            "flag",
            "created_at",
            "payload",
            "tags"
        ]
    );
}

#[test]
fn bad_arguments_are_named() {
    let run = Command::new(env!("CARGO_BIN_EXE_quarry-bench-native"))
        .args(["many", "1000", "1", "out"])
        .output()
        .expect("run quarry-bench-native");
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("usage: quarry-bench-native"));
}
