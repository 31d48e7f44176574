//! `quarry sync <spec>...`

use std::path::PathBuf;

use quarry_registry::Resolver;

use super::{Exit, report, report_plugin_error};
use crate::plan::{self, Environment};
use crate::runtime::wasm::WasmRuntime;
use crate::spec;

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Spec files, or directories whose `*.yml`/`*.yaml` files are specs.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Also write the summary of the run, as JSON, to this file.
    #[arg(long)]
    pub summary_location: Option<PathBuf>,
}

pub async fn run(args: SyncArgs) -> Exit {
    let spec = match spec::load(&args.paths) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("{e}");
            return Exit::Config;
        }
    };
    let env = match environment() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Exit::Failure;
        }
    };
    let summaries = match plan::execute(&spec, &env).await {
        Ok(summaries) => summaries,
        Err(e) => return report(&e),
    };
    let mut exit = Exit::Ok;
    for summary in &summaries {
        for e in &summary.plugin_errors {
            report_plugin_error(e);
            exit = exit.max(Exit::for_plugin_error(e).max(Exit::SyncErrors));
        }
        for e in &summary.errors {
            eprintln!("error: {e}");
            exit = exit.max(Exit::SyncErrors);
        }
        println!("{summary}");
    }
    if let Some(path) = &args.summary_location {
        let written = serde_json::to_vec_pretty(&summaries)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json));
        if let Err(e) = written {
            eprintln!("error: cannot write the summary to {}: {e}", path.display());
            exit = exit.max(Exit::SyncErrors);
        }
    }
    exit
}

pub fn environment() -> anyhow::Result<Environment> {
    Ok(Environment {
        runtime: WasmRuntime::new(plan::cache_dir())?,
        resolver: Resolver::from_env(super::current_exe().as_deref()),
        cwd: std::env::current_dir()?,
    })
}
