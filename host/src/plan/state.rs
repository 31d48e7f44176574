//! `quarry state`: a source's cursors in its state backend, and where that backend is.

use super::{Environment, Role, RunError};
use crate::runtime::PluginError;
use crate::spec::{DestinationSpec, SourceSpec, SpecError, SyncSpec};
use crate::sync;

/// What `quarry state` does with a source's cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateAction {
    Show,
    Reset,
}

/// Starts only the state backend of source `source` and shows or deletes its cursors. Returns
/// the cursors it held, sorted by key.
pub async fn state(
    spec: &SyncSpec,
    env: &Environment,
    source: &str,
    action: StateAction,
) -> Result<Vec<(String, String)>, RunError> {
    let Some(s) = spec.sources.iter().find(|s| s.name == source) else {
        let names: Vec<&str> = spec.sources.iter().map(|s| s.name.as_str()).collect();
        return Err(SpecError::new(format!(
            "no source named `{source}` in the spec (its sources: {})",
            names.join(", ")
        ))
        .into());
    };
    let (Some(options), Some(backend)) = (
        &s.backend_options,
        state_destination(s, &spec.destinations)?,
    ) else {
        return Err(SpecError::at(
            s.at.clone(),
            format!("source `{source}` keeps no state: it has no `backend_options`"),
        )
        .with_help("add `backend_options: { table_name: cq_state, connection: \"@@plugins.DESTINATION.connection\" }`")
        .into());
    };
    let d = spec
        .destinations
        .iter()
        .find(|d| d.name == backend)
        .ok_or_else(|| SpecError::at(s.at.clone(), format!("no destination named `{backend}`")))?;
    let mut plugin = env.start(d.into(), Role::Destination).await?;
    let result = async {
        let cursors = sync::state::load(plugin.as_mut(), backend, &options.table_name).await?;
        if action == StateAction::Reset {
            sync::state::reset(plugin.as_mut(), &options.table_name).await?;
        }
        Ok::<_, PluginError>(cursors)
    }
    .await;
    let closed = plugin.close().await;
    let mut cursors: Vec<(String, String)> = result?.into_iter().collect();
    closed?;
    cursors.sort();
    Ok(cursors)
}

/// The destination a source's `backend_options` keep its cursors in: `connection` must be
/// `@@plugins.NAME.connection` (CloudQuery's spelling) and NAME a destination of the specs. It
/// need not be one of the source's own destinations: then it is written only with state.
pub fn state_destination<'d>(
    source: &SourceSpec,
    destinations: &'d [DestinationSpec],
) -> Result<Option<&'d str>, SpecError> {
    let Some(options) = &source.backend_options else {
        return Ok(None);
    };
    let name = options
        .connection
        .strip_prefix("@@plugins.")
        .and_then(|rest| rest.strip_suffix(".connection"))
        .filter(|name| !name.is_empty());
    let Some(name) = name else {
        return Err(SpecError::at(
            source.at.clone(),
            format!(
                "source `{}`: backend_options.connection is `{}`, but Quarry keeps state only in a destination of the specs",
                source.name, options.connection
            ),
        )
        .with_help("write `connection: \"@@plugins.DESTINATION.connection\"` with a destination defined in the specs"));
    };
    let Some(destination) = destinations.iter().find(|d| d.name == name) else {
        let defined: Vec<String> = destinations
            .iter()
            .map(|d| format!("`{}`", d.name))
            .collect();
        return Err(SpecError::at(
            source.at.clone(),
            format!(
                "source `{}`: backend_options.connection names destination `{name}`, which is not defined (defined: {})",
                source.name,
                defined.join(", ")
            ),
        )
        .with_help(format!("add a `kind: destination` document named `{name}`, or name a defined one")));
    };
    if options.table_name.trim().is_empty() {
        return Err(SpecError::at(
            source.at.clone(),
            format!(
                "source `{}`: backend_options.table_name is empty",
                source.name
            ),
        )
        .with_help("name the table the cursors are kept in, e.g. `table_name: cq_state`"));
    }
    Ok(Some(destination.name.as_str()))
}

/// How often cursors are saved while a source runs: `QUARRY_STATE_INTERVAL` seconds (for
/// operators who want more frequent saves of long runs), else every 10 seconds.
pub(super) fn state_interval() -> std::time::Duration {
    let seconds = std::env::var("QUARRY_STATE_INTERVAL")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(10.0);
    std::time::Duration::from_secs_f64(seconds)
}
