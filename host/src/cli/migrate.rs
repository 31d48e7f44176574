//! `quarry migrate <spec>...`: creates and alters the destination tables the specs' sources
//! need, as a sync would before its first row, and moves no data (CloudQuery's `migrate`).
//! A migration that `migrate_mode: safe` refuses stops everything before any table is touched.

use super::{CliError, Exit, report_plugin_error};
use crate::plan::{self, MigrationPlan};

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub specs: super::Specs,
}

pub async fn run(args: MigrateArgs) -> Result<Exit, CliError> {
    let (spec, env) = super::load(&args.specs)?;
    let mut plan = plan::build(&spec, &env).await?;
    super::save_lock(&env)?;
    if let Err(e) = plan.refusals() {
        plan.close().await;
        return Err(e.into());
    }
    let mut failed = None;
    'destinations: for d in &mut plan.destinations {
        for m in &d.migrations {
            if matches!(m.plan, MigrationPlan::Apply(ref changes) if changes.is_empty()) {
                println!("{}: `{}` is up to date", d.spec.name, m.table);
                continue;
            }
            let force = m.plan.force(d.spec.migrate_mode);
            let migrated = match d.plugin.migrate_table(&m.wanted, force).await {
                Ok(()) => d.plugin.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = migrated {
                failed = Some(e.for_table(&m.table));
                break 'destinations;
            }
            println!("{}: `{}`: {}", d.spec.name, m.table, m.plan);
        }
    }
    let closed = plan.close().await;
    let mut exit = Exit::Ok;
    for e in failed.iter().chain(&closed) {
        report_plugin_error(e);
        exit = exit.max(super::Exit::for_plugin_error(e).max(Exit::SyncErrors));
    }
    Ok(exit)
}
