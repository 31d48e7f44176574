//! `quarry state show|reset <source> <spec>...`: an operator's view of a source's incremental
//! cursors, read from (or deleted in) its state backend.

use std::path::PathBuf;

use super::{Exit, report};
use crate::plan::{self, StateAction};
use crate::spec;

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Print a source's cursors (`key<TAB>value`, one per line).
    Show(StateArgs),
    /// Delete a source's cursors: its next sync starts from the beginning.
    Reset(StateArgs),
}

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// The source's name.
    pub source: String,
    /// Spec files, or directories whose `*.yml`/`*.yaml` files are specs.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub async fn run(command: StateCommand) -> Exit {
    let (args, action) = match command {
        StateCommand::Show(args) => (args, StateAction::Show),
        StateCommand::Reset(args) => (args, StateAction::Reset),
    };
    let spec = match spec::load(&args.paths) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("{e}");
            return Exit::Config;
        }
    };
    let env = match super::sync::environment() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Exit::Failure;
        }
    };
    match plan::state(&spec, &env, &args.source, action).await {
        Ok(cursors) => {
            match action {
                StateAction::Show => {
                    for (key, value) in &cursors {
                        println!("{key}\t{value}");
                    }
                }
                StateAction::Reset => eprintln!(
                    "Deleted {} cursor(s) of source `{}`; its next sync starts from the beginning",
                    cursors.len(),
                    args.source
                ),
            }
            Exit::Ok
        }
        Err(e) => report(&e),
    }
}
