//! Quarry's `basic` transformer, CloudQuery's `basic` transformer plugin (v2.7.0) as a
//! component: a list of transformations (remove, add, rename and obfuscate columns, rename
//! tables, mark primary keys, change case, drop rows), each applied in order to the tables its
//! globs match, with CloudQuery's spec, messages and output values.
//!
//! Where Quarry differs from CloudQuery it says so where it happens: the spec checks in
//! [`spec`], the JSON path syntax in `path`, table templates in `template`, metadata and nulls
//! in `transform`, hashing in `obfuscate`, case mapping in `case`, and the text `drop_rows`
//! compares in `value_str`.

mod case;
mod drop_rows;
mod except;
mod json;
mod obfuscate;
mod path;
pub mod spec;
mod template;
mod transform;
mod value_str;

#[cfg(test)]
mod tests;

use arrow_array::RecordBatch;
use quarry_sdk::{Error, Info, Plugin, Result, SchemaRef, Transformer};

pub use spec::{Spec, TransformationSpec};
use transform::Transformation;

/// The transformer: its transformations, in the order they run.
pub struct Basic {
    transformations: Vec<Transformation>,
}

impl Plugin for Basic {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "basic",
            env!("CARGO_PKG_VERSION"),
            "Removes, adds, renames and obfuscates columns, renames tables, sets primary keys, changes case and drops rows (CloudQuery's basic transformer)",
        )
    }

    fn new(spec: Spec) -> Result<Self> {
        let transformations = spec
            .compile()
            .map_err(|problems| Error::invalid_spec(problems.join("; ")))?;
        Ok(Basic { transformations })
    }
}

impl Basic {
    /// `batch` through every transformation, each given the output of the one before.
    fn run(&mut self, mut batch: RecordBatch) -> Result<RecordBatch> {
        for t in &mut self.transformations {
            batch = t.apply(batch)?;
        }
        Ok(batch)
    }
}

impl Transformer for Basic {
    fn transform_schema(&mut self, schema: SchemaRef) -> Result<SchemaRef> {
        // The record path on no rows, as CloudQuery does, so the two cannot disagree.
        Ok(self.run(RecordBatch::new_empty(schema))?.schema())
    }

    fn transform(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let batch = self.run(batch)?;
        // A batch left without rows (drop_rows) is not passed on.
        Ok(if batch.num_rows() == 0 {
            Vec::new()
        } else {
            vec![batch]
        })
    }
}

quarry_sdk::export_transformer!(Basic);
