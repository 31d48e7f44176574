//! `quarry state show|reset <source> <spec>...`: an operator's view of a source's incremental
//! cursors, read from (or deleted in) its state backend.

use super::{CliError, Exit};
use crate::plan::{self, StateAction};

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
    #[command(flatten)]
    pub specs: super::Specs,
}

pub async fn run(command: StateCommand) -> Result<Exit, CliError> {
    let (args, action) = match command {
        StateCommand::Show(args) => (args, StateAction::Show),
        StateCommand::Reset(args) => (args, StateAction::Reset),
    };
    let (spec, env) = super::load(&args.specs)?;
    let cursors = plan::state(&spec, &env, &args.source, action).await?;
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
    Ok(Exit::Ok)
}
