//! The schema a destination gets for a source's table: write mode and `pk_mode` applied. What
//! the destination's table then needs is planned in `crate::plan::migration`.

use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};
use quarry_sdk::cq_id::CQ_ID;
use quarry_sdk::metadata::PRIMARY_KEY;
use quarry_sdk::metadata::TRUE;

use crate::spec::{PkMode, WriteMode};

/// The table's schema as this destination stores it. In `append` mode primary keys are not
/// enforced, so no column is a key; with `pk_mode: cq-id-only` the key is `_cq_id` alone. The
/// schema is returned unchanged (the same `Arc`) when neither applies.
pub fn destination_schema(
    schema: &SchemaRef,
    write_mode: WriteMode,
    pk_mode: PkMode,
) -> Result<SchemaRef, String> {
    let key = |f: &Field| f.metadata().get(PRIMARY_KEY).is_some_and(|v| v == TRUE);
    let is_key: Box<dyn Fn(&Field) -> bool> = match (write_mode, pk_mode) {
        (WriteMode::Append, _) => Box::new(|_| false),
        (_, PkMode::CqIdOnly) => {
            if schema.field_with_name(CQ_ID).is_err() {
                return Err(format!(
                    "`pk_mode: cq-id-only` needs a `{CQ_ID}` column, and table `{}` has none",
                    quarry_sdk::table_name(schema)
                ));
            }
            Box::new(|f: &Field| f.name() == CQ_ID)
        }
        _ => return Ok(schema.clone()),
    };
    if schema.fields().iter().all(|f| key(f) == is_key(f)) {
        return Ok(schema.clone());
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut metadata = f.metadata().clone();
            if is_key(f) {
                metadata.insert(PRIMARY_KEY.to_string(), TRUE.to_string());
            } else {
                metadata.remove(PRIMARY_KEY);
            }
            // A key column is never null; a column that stops being a key keeps its nullability.
            let nullable = f.is_nullable() && !is_key(f);
            f.as_ref()
                .clone()
                .with_nullable(nullable)
                .with_metadata(metadata)
        })
        .collect();
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;
    use quarry_sdk::{Column, Table};

    use super::*;

    fn schema() -> SchemaRef {
        quarry_sdk::cq_id::with_id_columns(
            &Table::new("t")
                .column(Column::new("id", DataType::Int64).primary_key())
                .column(Column::new("v", DataType::Utf8)),
        )
        .schema()
    }

    fn keys(schema: &SchemaRef) -> Vec<String> {
        Table::from_schema(schema)
            .unwrap()
            .primary_keys()
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn write_and_pk_modes_shape_the_key() {
        let s = schema();
        let same = destination_schema(&s, WriteMode::Overwrite, PkMode::Default).unwrap();
        assert!(Arc::ptr_eq(&same, &s));
        assert_eq!(keys(&same), ["id"]);
        let append = destination_schema(&s, WriteMode::Append, PkMode::Default).unwrap();
        assert!(keys(&append).is_empty());
        assert!(!append.field_with_name("id").unwrap().is_nullable());
        let cq = destination_schema(&s, WriteMode::OverwriteDeleteStale, PkMode::CqIdOnly).unwrap();
        assert_eq!(keys(&cq), ["_cq_id"]);
    }

    #[test]
    fn cq_id_only_needs_a_cq_id_column() {
        let s = Table::new("bare")
            .column(Column::new("id", DataType::Int64).primary_key())
            .schema();
        let err = destination_schema(&s, WriteMode::Overwrite, PkMode::CqIdOnly).unwrap_err();
        assert_eq!(
            err,
            "`pk_mode: cq-id-only` needs a `_cq_id` column, and table `bare` has none"
        );
    }
}
