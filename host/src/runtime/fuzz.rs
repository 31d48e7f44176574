//! Bounded fuzz runs of everything the host decodes from a plugin (issue 16): Arrow IPC over the
//! component boundary (schemas and batches, then the internal columns and the re-encoding a
//! destination gets), and protobuf sync messages over gRPC (schemas, records, delete requests,
//! table errors). The corpora are checked in under `tests/fuzz/`; each entry is mutated with a
//! fixed seed (`quarry_sdk::fuzz`). Every mutant must be an error or messages, never a panic or
//! an abort. `QUARRY_FUZZ_ITERATIONS=N cargo test -p quarry --lib fuzz` runs N mutants per entry.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use prost::Message as _;
use quarry_grpc::pb::plugin as pb;
use quarry_sdk::fuzz::{self, Mutator};

use super::SourceMessage;
use super::grpc::accept_sync_response;
use super::wasm::imports;
use crate::sync::columns::InternalColumns;

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz")
        .join(name)
}

/// The IPC corpus, with the stream that made arrow-ipc 60.1 panic (hole 3) among the seeds.
fn ipc_corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let mut seeds = fuzz::corpus(&corpus_dir("ipc"), ".arrows", 5);
    let panic =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ipc/decoder-panic.hex");
    let hex = std::fs::read_to_string(&panic).expect("decoder-panic.hex");
    let bytes = (0..hex.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex.trim()[i..i + 2], 16).expect("hex"))
        .collect();
    seeds.push((panic, bytes));
    seeds
}

/// What the host does with a source's message after decoding it: the engine's internal
/// columns, then the IPC bytes a destination is sent, which must decode to the same batch.
fn forward(messages: Vec<SourceMessage>, columns: &mut InternalColumns) {
    for message in messages {
        match message {
            SourceMessage::MigrateTable(schema) => {
                let table = quarry_sdk::table_name(&schema).to_string();
                columns.migrate(&table, &schema);
            }
            SourceMessage::Insert { batch, .. } => {
                let table = quarry_sdk::table_name(batch.schema_ref()).to_string();
                if let Ok(extended) = columns.extend(&table, &batch) {
                    // What a destination receives decodes, and re-encodes stably after the
                    // first pass (which may normalize, e.g. an empty time zone to none);
                    // compared as bytes, since a float NaN is not equal to itself.
                    let once = imports::encode_batch(&extended).expect("re-encoding a batch");
                    let back = imports::decode_batch(once).expect("decoding our own encoding");
                    let twice = imports::encode_batch(&back).expect("encoding again");
                    let again = imports::decode_batch(twice.clone()).expect("decoding again");
                    assert!(imports::encode_batch(&again).expect("a third time") == twice);
                }
            }
            SourceMessage::DeleteRecord(_)
            | SourceMessage::TableError { .. }
            | SourceMessage::State { .. } => {}
        }
    }
}

/// Runs `check` on every mutant of every seed, failing with the seed's name if it panics.
fn run(seeds: &[(PathBuf, Vec<u8>)], default: u64, mut check: impl FnMut(Vec<u8>)) {
    let iterations = fuzz::iterations(default);
    let mut mutator = Mutator::binary(0x5eed_f0a1_u64);
    for (path, seed) in seeds {
        // The seed itself first: a valid input must pass through.
        check(seed.clone());
        for _ in 0..iterations {
            let mutant = mutator.mutate(seed);
            let copy = mutant.clone();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(mutant)));
            assert!(
                outcome.is_ok(),
                "a mutant of {} panicked the host; its bytes: {copy:02x?}",
                path.display()
            );
        }
    }
}

#[test]
fn mutated_ipc_from_a_component_is_an_error_never_a_panic() {
    let seeds = ipc_corpus();
    let mut columns = InternalColumns::new("fuzz", 0);
    let mut decoded = 0u64;
    run(&seeds, 2000, |bytes| {
        // The boundary decodes a schema (tables, migrate-table) or a batch (emit).
        if let Ok(schema) = imports::decode_schema(bytes.clone()) {
            decoded += 1;
            forward(vec![SourceMessage::MigrateTable(schema)], &mut columns);
        }
        if let Ok(batch) = imports::decode_batch(bytes) {
            decoded += 1;
            let schema = batch.schema();
            forward(
                vec![
                    SourceMessage::MigrateTable(schema),
                    SourceMessage::Insert {
                        batch,
                        ipc_bytes: 0,
                    },
                ],
                &mut columns,
            );
        }
    });
    // Some mutants must get through the decoder, or the run exercised only its first checks.
    assert!(
        decoded > seeds.len() as u64,
        "only {decoded} inputs decoded"
    );
}

#[test]
fn mutated_grpc_sync_messages_are_errors_never_panics() {
    let seeds = fuzz::corpus(&corpus_dir("grpc"), ".pb", 4);
    let mut columns = InternalColumns::new("fuzz", 0);
    let mut accepted = 0u64;
    run(&seeds, 2000, |bytes| {
        let Ok(response) = pb::sync::Response::decode(bytes.as_slice()) else {
            return;
        };
        let mut migrated = HashSet::new();
        if let Ok(messages) = accept_sync_response(response.message, &mut migrated) {
            accepted += 1;
            forward(messages, &mut columns);
        }
    });
    assert!(
        accepted > seeds.len() as u64,
        "only {accepted} messages accepted"
    );
}

/// The gRPC corpus: sync responses made from the IPC corpus, as a CloudQuery SDK source sends
/// them. Regenerated with `QUARRY_BLESS=1`, compared otherwise.
#[test]
fn the_grpc_fuzz_corpus_is_current() {
    use pb::sync::response::Message as M;
    let ipc = |name: &str| std::fs::read(corpus_dir("ipc").join(name)).expect("the IPC corpus");
    let message = |m: M| pb::sync::Response { message: Some(m) }.encode_to_vec();
    let one_row = ipc("all_types.one_row.arrows");
    let entries = [
        (
            "migrate_table.pb",
            message(M::MigrateTable(pb::sync::MessageMigrateTable {
                table: ipc("all_types.schema.arrows"),
            })),
        ),
        (
            "insert.pb",
            message(M::Insert(pb::sync::MessageInsert {
                record: ipc("test_rows.batch.arrows"),
            })),
        ),
        (
            "insert_all_types.pb",
            message(M::Insert(pb::sync::MessageInsert {
                record: ipc("all_types.batch.arrows"),
            })),
        ),
        (
            "delete_record.pb",
            message(M::DeleteRecord(pb::sync::MessageDeleteRecord {
                table_name: "test_all_types".into(),
                where_clause: vec![pb::PredicatesGroup {
                    grouping_type: pb::predicates_group::GroupingType::And as i32,
                    predicates: vec![pb::Predicate {
                        operator: pb::predicate::Operator::Eq as i32,
                        column: "id".into(),
                        record: one_row,
                    }],
                }],
                table_relations: vec![],
            })),
        ),
        (
            "error.pb",
            message(M::Error(pb::sync::MessageError {
                table_name: "test_rows".into(),
                error: "a table failed".into(),
            })),
        ),
    ];
    let dir = corpus_dir("grpc");
    let bless = std::env::var_os("QUARRY_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).expect("tests/fuzz/grpc");
    }
    for (name, bytes) in entries {
        let path = dir.join(name);
        if bless {
            std::fs::write(&path, &bytes).expect("write the corpus");
        } else {
            let on_disk = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (QUARRY_BLESS=1 writes it)", path.display()));
            assert!(
                on_disk == bytes,
                "{} is stale: QUARRY_BLESS=1 rewrites it",
                path.display()
            );
        }
    }
}
