//! Quarry's MySQL and MariaDB plugin, as a sandboxed component: it speaks the MySQL protocol
//! itself (`wire.rs`) over `wasi:sockets`, so it reaches only the hosts granted under
//! `permissions.network`. As a source, tables found in `information_schema`, read with streamed
//! queries, incrementally by a cursor column (`source.rs`); as a destination, tables created and
//! migrated from Arrow schemas and loaded with `LOAD DATA LOCAL INFILE` (`destination.rs`).

mod destination;
mod source;
pub mod wire;

use std::collections::BTreeMap;

use quarry_sdk::{Error, Info, Plugin, Result, Source, SyncContext, Table};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::wire::{Config, Connection};

/// The `mysql` plugin's `spec:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `mysql://user:password@host:port/database` (`mariadb://` too); keep the password out of
    /// the file with `${MYSQL_PASSWORD}`. The host must be granted under
    /// `permissions: { network: ["host:3306"] }`.
    pub connection_string: String,
    /// The tables and views to read, globs over `database.table`; by default every table of the
    /// connection string's database.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Per table (`name` or `database.name`), a column that grows with every change (an
    /// `updated_at`, an auto-increment id): each sync reads only rows past the last value saved.
    #[serde(default)]
    pub incremental: BTreeMap<String, String>,
    /// The rows per batch sent.
    #[serde(default = "default_rows_per_batch")]
    #[schemars(range(min = 1))]
    pub rows_per_batch: usize,
    /// How many connections read one large table at once, each a range of its integer primary
    /// key (a source's `concurrency:` sets it). Their snapshots begin while the table is locked
    /// for a moment (`LOCK TABLES ... READ`, waiting up to a minute for running writes); without
    /// that privilege the table is read on one connection.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1))]
    pub concurrency: usize,
    /// A table is split into key ranges only with at least this many rows per range (by the
    /// server's estimate, `information_schema.TABLES.TABLE_ROWS`).
    #[serde(default = "default_split_rows")]
    #[schemars(range(min = 1))]
    pub split_rows: u64,
}

fn default_rows_per_batch() -> usize {
    50_000
}

fn default_concurrency() -> usize {
    4
}

fn default_split_rows() -> u64 {
    1_000_000
}

fn percent_decode(text: &str) -> Result<String> {
    quarry_sdk::sql::percent_decode(text)
        .map_err(|why| Error::invalid_spec(format!("connection_string: {why}")))
}

impl Config {
    /// `mysql://user:password@host:port/database`.
    pub fn parse(text: &str) -> Result<Config> {
        let invalid = |why: &str| Error::invalid_spec(format!("connection_string: {why}"));
        let rest = text
            .trim()
            .strip_prefix("mysql://")
            .or_else(|| text.trim().strip_prefix("mariadb://"))
            .ok_or_else(|| invalid("write it as mysql://user:password@host:3306/database"))?;
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, host) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (percent_decode(u)?, Some(percent_decode(p)?)),
                None => (percent_decode(c)?, None),
            },
            None => ("root".to_string(), None),
        };
        let (host, port) = match host.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    invalid(&format!("port `{p}` is not a number from 1 to 65535"))
                })?,
            ),
            None => (host, 3306),
        };
        if host.is_empty() {
            return Err(invalid("it names no host"));
        }
        Ok(Config {
            host: host.to_string(),
            port,
            user,
            password,
            database: (!database.is_empty())
                .then(|| percent_decode(database))
                .transpose()?,
        })
    }
}

pub struct MySql {
    conn: Connection,
    config: Config,
    settings: source::Settings,
    discovered: Option<Vec<source::SourceTable>>,
}

impl Plugin for MySql {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "mysql",
            env!("CARGO_PKG_VERSION"),
            "MySQL and MariaDB: a source (streamed queries, incremental cursors) and a destination \
             (LOAD DATA LOCAL INFILE, upserts on primary keys, migrations)",
        )
        .preferred_batch(50_000, 0)
    }

    fn new(spec: Spec) -> Result<Self> {
        for (field, value) in [
            ("rows_per_batch", spec.rows_per_batch as u64),
            ("concurrency", spec.concurrency as u64),
            ("split_rows", spec.split_rows),
        ] {
            if value == 0 {
                return Err(Error::invalid_spec(format!("{field} must be at least 1")));
            }
        }
        let config = Config::parse(&spec.connection_string)?;
        // As a source without `tables`: every table of the URL's database (checked at discovery,
        // a destination needs none).
        let tables = match (spec.tables.is_empty(), &config.database) {
            (true, Some(db)) => vec![format!("{db}.*")],
            _ => spec.tables,
        };
        // The database may not exist yet (a destination creates it): select it after the
        // handshake, which would refuse an unknown one.
        let mut conn = Connection::connect(&Config {
            database: None,
            ..config.clone()
        })?;
        conn.query(source::SESSION)?;
        if let Some(db) = &config.database {
            match conn.query(&format!("use {}", source::ident(db))) {
                Err(e) if e.message.contains("ERROR 1049") => {}
                other => drop(other?),
            }
        }
        Ok(MySql {
            conn,
            config,
            settings: source::Settings {
                tables,
                incremental: spec.incremental,
                rows_per_batch: spec.rows_per_batch,
                concurrency: spec.concurrency,
                split_rows: spec.split_rows,
            },
            discovered: None,
        })
    }

    fn test_connection(&mut self) -> Result<()> {
        self.conn.query("select 1").map(drop)
    }
}

impl Source for MySql {
    fn tables(&self) -> Vec<Table> {
        self.discovered
            .iter()
            .flatten()
            .map(|t| t.table.clone())
            .collect()
    }

    fn discover(&mut self) -> Result<Vec<Table>> {
        if self.settings.tables.is_empty() {
            return Err(Error::invalid_spec(
                "tables: say which tables to read (globs over database.table), or name a \
                 database in connection_string",
            ));
        }
        if self.discovered.is_none() {
            self.discovered = Some(source::discover(&mut self.conn, &self.settings)?);
        }
        Ok(self.tables())
    }

    fn sync(&mut self, tables: &[Table], out: &mut SyncContext<'_>) -> Result<()> {
        let discovered = self.discovered.clone().unwrap_or_default();
        for table in tables {
            if let Some(found) = discovered.iter().find(|t| t.table.name == table.name) {
                source::sync_table(&mut self.conn, &self.config, &self.settings, found, out)?;
            }
        }
        Ok(())
    }
}

quarry_sdk::export_source_and_destination!(MySql);

#[cfg(test)]
mod tests;
