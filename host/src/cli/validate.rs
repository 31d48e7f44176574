//! `quarry validate <spec>...` (CloudQuery's `validate-config`): everything short of moving data.
//! The plan is made — every plugin resolved, opened in its sandbox and initialised, its spec
//! checked against its schema, each table selection resolved, write and migrate modes checked —
//! and printed with the migration each destination table needs. Nothing is written.

use super::{CliError, Exit};
use crate::plan::{self, SyncPlan};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub specs: super::Specs,
}

pub async fn run(args: ValidateArgs) -> Result<Exit, CliError> {
    let (spec, env) = super::load(&args.specs)?;
    let plan = plan::build(&spec, &env).await?;
    print!("{}", describe(&plan));
    let refused = plan.refusals();
    for e in plan.close().await {
        tracing::warn!("closing failed: {e}");
    }
    refused?;
    println!("The specs are valid; nothing was changed.");
    Ok(Exit::Ok)
}

/// The plan for people: each source with its tables, each destination with its settings and a
/// table of the migration each of its tables needs.
pub fn describe(plan: &SyncPlan<'_>) -> String {
    let mut out = String::new();
    for s in &plan.sources {
        let info = s.plugin.info();
        let names: Vec<&str> = s.tables.iter().map(|t| quarry_sdk::table_name(t)).collect();
        out += &format!(
            "source `{}`: {} {} → {}\n  tables: {}\n",
            s.spec.name,
            s.spec.path,
            info.version,
            s.spec.destinations.join(", "),
            names.join(", ")
        );
        if s.lanes() > 1 {
            out += &format!(
                "  workers: {} lanes, each an instance of the source and of every destination\n",
                s.lanes()
            );
        }
        if let Some(state) = &s.state {
            out += &format!(
                "  state: table `{}` in destination `{}`\n",
                state.table, plan.destinations[state.destination].spec.name
            );
        }
    }
    for d in &plan.destinations {
        out += &format!(
            "destination `{}`: {} {}, write_mode {}, migrate_mode {}, pk_mode {}, batches of {} rows or {}\n",
            d.spec.name,
            d.spec.path,
            d.plugin.info().version,
            d.spec.write_mode,
            d.spec.migrate_mode,
            d.spec.pk_mode,
            d.batching.rows,
            crate::sandbox::human_bytes(d.batching.bytes as u64),
        );
        if !d.transformers.is_empty() {
            let chain: Vec<String> = d
                .transformers
                .iter()
                .map(|t| {
                    format!(
                        "`{}` ({} {})",
                        t.spec.name,
                        t.spec.path,
                        t.plugin.info().version
                    )
                })
                .collect();
            out += &format!(
                "  transformers: {} (tables below as the last one leaves them)\n",
                chain.join(" → ")
            );
        }
        let width = d
            .migrations
            .iter()
            .map(|m| m.table.len())
            .max()
            .unwrap_or(0)
            .max("table".len());
        out += &format!("  {:<width$}  migration\n", "table");
        for m in &d.migrations {
            out += &format!("  {:<width$}  {}\n", m.table, m.plan);
        }
    }
    out
}
