//! The spec loader: reads the user's CloudQuery-compatible YAML files (ARCHITECTURE.md) into a checked
//! [`SyncSpec`], or into one [`SpecError`] that names the file, line and column at fault.
//!
//! Pipeline: YAML text → node tree with positions (`yaml`) → `${...}` expansion on parsed values
//! (`expand`) → serde over the tree into the structs below (`de`, which attaches positions to serde
//! errors) → checks across documents (`loader`). A plugin's own `spec:` stays JSON and is checked
//! later against the plugin's schema with [`PluginSpec::validate`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod de;
mod error;
mod expand;
mod loader;
mod permissions;
mod plugin_spec;
mod references;
pub mod sync_group;
pub(crate) mod units;
mod yaml;

#[cfg(test)]
mod ui_tests;

pub use error::{Location, SpecError};
pub use permissions::{Access, Permissions};
pub use plugin_spec::PluginSpec;
/// A destination's `write_mode:`; the SDK's definition, which plugins declare support for.
pub use quarry_sdk::WriteMode;

/// Everything one `quarry sync` run was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSpec {
    pub sources: Vec<SourceSpec>,
    pub destinations: Vec<DestinationSpec>,
    /// `kind: transformer` documents, in the order they were read (the order a destination
    /// applies the ones it lists, as CloudQuery's `sync` does).
    pub transformers: Vec<TransformerSpec>,
}

/// Loads every spec document in `paths` (files, or directories whose `*.yml`/`*.yaml` files are
/// read in name order) and checks them together. File names in errors are shown as given here.
pub fn load(paths: &[PathBuf]) -> Result<SyncSpec, SpecError> {
    loader::load(paths, &|name| std::env::var(name))
}

/// A plugin's `spec:` from a YAML (or JSON) file of one document, `${NAME}` expanded.
pub fn load_value(path: &Path) -> Result<serde_json::Value, SpecError> {
    loader::load_file(path, &|name| std::env::var(name))
}

/// Reads specs from `text` as if it were the file `name` (which is only named in diagnostics);
/// `${NAME}` expands the process environment.
pub fn load_str(text: &str, name: &Path) -> Result<SyncSpec, SpecError> {
    let texts = [(name.to_path_buf(), text.to_string())];
    loader::load_texts(&texts, &[name.to_path_buf()], &|name| std::env::var(name))
}

/// Declares an enum spelled in YAML as fixed words: serde names, `Display` and `ALL` come from one
/// list, so a test can check every spelling round-trips.
macro_rules! yaml_words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &[Self] = &[$(Self::$variant),+];
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$variant => $text,)+ })
            }
        }
    };
}

/// Where a plugin comes from; decides how `path` is read. The resolver's own type, so the two
/// cannot drift.
pub use quarry_registry::RegistryKind as Registry;

yaml_words! {
    MigrateMode {
        /// Only migrations that cannot lose data.
        #[default]
        Safe => "safe",
        /// Drop and recreate tables when needed.
        Forced => "forced",
    }
}

yaml_words! {
    PkMode {
        #[default]
        Default => "default",
        /// `_cq_id` is the only primary key.
        CqIdOnly => "cq-id-only",
    }
}

/// A `kind: source` document's `spec:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of source settings")]
pub struct SourceSpec {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub registry: Registry,
    pub version: Option<String>,
    /// Table name patterns to sync; required, as in CloudQuery (`["*"]` for all).
    #[serde(deserialize_with = "units::string_list")]
    pub tables: Vec<String>,
    #[serde(default, deserialize_with = "units::string_list")]
    pub skip_tables: Vec<String>,
    #[serde(default)]
    pub skip_dependent_tables: bool,
    /// Names of `kind: destination` documents; at least one, each defined.
    #[serde(deserialize_with = "units::string_list")]
    pub destinations: Vec<String>,
    #[serde(default)]
    pub deterministic_cq_id: bool,
    pub concurrency: Option<u64>,
    /// Quarry's own: how many instances of this source sync its tables at once, each a share of
    /// its top-level tables (with their children) into instances of its own of every destination
    /// (1 when unset).
    pub workers: Option<u32>,
    pub backend_options: Option<BackendOptions>,
    #[serde(default)]
    pub spec: PluginSpec,
    #[serde(default)]
    pub permissions: Permissions,
    /// The user's consent to run a native executable (`registry: local`) outside the sandbox,
    /// with their own rights; without it such a plugin is refused before it starts.
    #[serde(default)]
    pub native: bool,
    /// The keys whose signature an OCI plugin must carry.
    pub verify: Option<Verify>,
    /// Where this document's `spec:` mapping starts; set by [`load`].
    #[serde(skip, default = "Location::unset")]
    pub at: Location,
    /// Where `tables` is, and each pattern of `tables` and `skip_tables`; set by [`load`], for
    /// diagnostics about the table selection.
    #[serde(skip, default = "Location::unset")]
    pub tables_at: Location,
    #[serde(skip)]
    pub patterns_at: Vec<(String, Location)>,
}

/// Where a source keeps incremental-sync state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `table_name` and `connection`"
)]
pub struct BackendOptions {
    pub table_name: String,
    /// Usually `@@plugins.NAME.connection`, resolved by the sync planner.
    pub connection: String,
}

/// A `kind: destination` document's `spec:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of destination settings")]
pub struct DestinationSpec {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub registry: Registry,
    pub version: Option<String>,
    #[serde(default)]
    pub write_mode: WriteMode,
    #[serde(default)]
    pub migrate_mode: MigrateMode,
    #[serde(default)]
    pub pk_mode: PkMode,
    /// Rows per batch.
    pub batch_size: Option<u64>,
    pub batch_size_bytes: Option<u64>,
    #[serde(default, deserialize_with = "units::duration")]
    pub batch_timeout: Option<Duration>,
    /// A label for the rows of each sync, in column `_cq_sync_group_id` (part of the primary
    /// key): a template over the sync's time and id ([`sync_group`]).
    pub sync_group_id: Option<String>,
    /// Write a row per source of each sync into table `cloudquery_sync_summaries`.
    #[serde(default)]
    pub send_sync_summary: bool,
    /// Names of `kind: transformer` documents whose transformers this destination's rows go
    /// through (applied in the order the documents were read, as CloudQuery's `sync` does).
    #[serde(default, deserialize_with = "units::string_list")]
    pub transformers: Vec<String>,
    #[serde(default)]
    pub spec: PluginSpec,
    #[serde(default)]
    pub permissions: Permissions,
    /// The user's consent to run a native executable (`registry: local`) outside the sandbox,
    /// with their own rights; without it such a plugin is refused before it starts.
    #[serde(default)]
    pub native: bool,
    /// The keys whose signature an OCI plugin must carry.
    pub verify: Option<Verify>,
    /// Where this document's `spec:` mapping starts; set by [`load`].
    #[serde(skip, default = "Location::unset")]
    pub at: Location,
}

/// A `kind: transformer` document's `spec:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of transformer settings")]
pub struct TransformerSpec {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub registry: Registry,
    pub version: Option<String>,
    #[serde(default)]
    pub spec: PluginSpec,
    #[serde(default)]
    pub permissions: Permissions,
    /// The user's consent to run a native executable (`registry: local`) outside the sandbox.
    #[serde(default)]
    pub native: bool,
    /// The keys whose signature an OCI plugin must carry.
    pub verify: Option<Verify>,
    /// Where this document's `spec:` mapping starts; set by [`load`].
    #[serde(skip, default = "Location::unset")]
    pub at: Location,
}

/// `verify:`: a plugin runs only if one of these keys signed it (cosign's key-based signatures).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `keys`")]
pub struct Verify {
    /// Public keys (PEM files, relative to the working directory, or inline PEM).
    #[serde(deserialize_with = "units::string_list")]
    pub keys: Vec<String>,
}

/// Quarry's own settings, from its config file (`QUARRY_CONFIG`, else
/// `$XDG_CONFIG_HOME/quarry/config.yml`, else `~/.config/quarry/config.yml`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `registries` or `verify`"
)]
pub struct UserConfig {
    /// How to reach registries, by `host[:port]`.
    #[serde(default)]
    pub registries: std::collections::BTreeMap<String, quarry_registry::oci::RegistrySettings>,
    /// The keys every OCI plugin without its own `verify:` must be signed by.
    pub verify: Option<Verify>,
    /// Where `registry: cloudquery` plugins Quarry has no equivalent of are fetched from: an OCI
    /// `<registry-host>/<prefix>`; `TEAM/NAME` at `version` is `<prefix>/TEAM/NAME:version`.
    pub cloudquery_mirror: Option<String>,
    /// The file it was read from; relative paths in it start from its directory.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

impl UserConfig {
    /// The config file of this process, if there is one: `QUARRY_CONFIG` (which must exist),
    /// else the XDG location (which may not).
    pub fn load() -> Result<UserConfig, SpecError> {
        let explicit = std::env::var_os("QUARRY_CONFIG").map(PathBuf::from);
        let path = explicit.clone().or_else(|| {
            let base = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
            Some(base.join("quarry").join("config.yml"))
        });
        let Some(path) = path else {
            return Ok(UserConfig::default());
        };
        if explicit.is_none() && !path.exists() {
            return Ok(UserConfig::default());
        }
        let mut config: UserConfig = loader::load_file(&path, &|name| std::env::var(name))?;
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        for settings in config.registries.values_mut() {
            if let Some(ca) = &settings.ca_file {
                settings.ca_file = Some(dir.join(ca));
            }
        }
        if let Some(verify) = &mut config.verify {
            if verify.keys.is_empty() {
                return Err(SpecError::new(format!(
                    "{}: `verify.keys` is empty: it would require no signature at all; list public keys or remove `verify`",
                    path.display()
                )));
            }
            for key in &mut verify.keys {
                if !key.contains("-----BEGIN") {
                    *key = dir.join(&*key).display().to_string();
                }
            }
        }
        config.file = Some(path);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::de::from_node;
    use crate::spec::yaml::parse_documents;

    /// Every spelling in `ALL` reads back as the variant that displays it.
    fn round_trips<T>(all: &[T])
    where
        T: fmt::Display + PartialEq + fmt::Debug + for<'de> Deserialize<'de>,
    {
        for variant in all {
            let node = parse_documents(&format!("\"{variant}\"\n"))
                .unwrap()
                .remove(0);
            assert_eq!(&from_node::<T>(&node).unwrap(), variant);
        }
    }

    #[test]
    fn yaml_words_round_trip() {
        round_trips(Registry::ALL);
        round_trips(&WriteMode::ALL);
        round_trips(MigrateMode::ALL);
        round_trips(PkMode::ALL);
        assert_eq!(WriteMode::default().to_string(), "overwrite-delete-stale");
        assert_eq!(PkMode::CqIdOnly.to_string(), "cq-id-only");
        assert_eq!(Registry::default(), Registry::Quarry);
    }
}
