//! Tables and columns, and their round trip through Arrow schemas with CloudQuery's metadata.
//!
//! Every boundary carries a table as an Arrow schema. Table-level facts live in the schema's
//! metadata, column-level facts in each field's metadata, under the same keys CloudQuery uses, so
//! a table written by a CloudQuery plugin and one written by a Quarry plugin read the same.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::{Error, Result};

/// The metadata keys of the protocol.
pub mod metadata {
    /// Schema metadata: the table's name.
    pub const TABLE_NAME: &str = "cq:table_name";
    /// Schema metadata: the table's description.
    pub const TABLE_DESCRIPTION: &str = "cq:table_description";
    /// Schema metadata: the table's title.
    pub const TABLE_TITLE: &str = "cq:table_title";
    /// Schema metadata: the parent table's name, for a child table.
    pub const TABLE_DEPENDS_ON: &str = "cq:table_depends_on";
    /// Schema metadata: `"true"` for a table synced incrementally.
    pub const TABLE_INCREMENTAL: &str = "cq:extension:is_incremental";
    /// Field metadata: `"true"` for a primary-key column.
    pub const PRIMARY_KEY: &str = "cq:extension:primary_key";
    /// Field metadata: `"true"` for a unique column.
    pub const UNIQUE: &str = "cq:extension:unique";
    /// Field metadata: `"true"` for a column an incremental sync orders by.
    pub const INCREMENTAL: &str = "cq:extension:incremental";
    /// Field metadata: the column's description (a Quarry key; CloudQuery carries none).
    pub const COLUMN_DESCRIPTION: &str = "quarry:description";
    /// Field metadata: for a `json` column, the JSON shape of its values as a JSON document
    /// mapping each key to its Arrow type name (`utf8`, `int64`, `timestamp[us, tz=UTC]`, ...;
    /// an object or a one-element list for nested values). CloudQuery's `jsonflattener` turns
    /// the first level into columns.
    pub const TYPE_SCHEMA: &str = "cq:extension:type_schema";
    /// Field metadata: an Arrow extension type's name.
    pub const EXTENSION_NAME: &str = "ARROW:extension:name";
    /// Field metadata: an Arrow extension type's serialized parameters.
    pub const EXTENSION_METADATA: &str = "ARROW:extension:metadata";
    /// The value of a boolean metadata key that is set.
    pub const TRUE: &str = "true";
}

/// CloudQuery's Arrow extension types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// A UUID, stored as `FixedSizeBinary(16)`.
    Uuid,
    /// JSON text, stored as `Binary`.
    Json,
    /// An IP address or network (`inet`), stored as `Binary` holding its text form.
    Inet,
    /// A MAC address, stored as `Binary` holding its text form.
    Mac,
}

impl Extension {
    /// Every extension type, for enumeration in tests and type mappings.
    pub const ALL: [Extension; 4] = [
        Extension::Uuid,
        Extension::Json,
        Extension::Inet,
        Extension::Mac,
    ];

    /// The `ARROW:extension:name` value.
    pub fn name(self) -> &'static str {
        match self {
            Extension::Uuid => "uuid",
            Extension::Json => "json",
            Extension::Inet => "inet",
            Extension::Mac => "mac",
        }
    }

    /// The `ARROW:extension:metadata` value.
    pub fn serialized(self) -> &'static str {
        match self {
            Extension::Uuid => "uuid-serialized",
            Extension::Json => "json-serialized",
            Extension::Inet => "inet-serialized",
            Extension::Mac => "mac-serialized",
        }
    }

    /// The Arrow type the values are stored in.
    pub fn storage_type(self) -> DataType {
        match self {
            Extension::Uuid => DataType::FixedSizeBinary(16),
            Extension::Json | Extension::Inet | Extension::Mac => DataType::Binary,
        }
    }

    /// The extension a field carries, if any.
    pub fn of(field: &Field) -> Option<Extension> {
        let name = field.metadata().get(metadata::EXTENSION_NAME)?;
        Extension::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// One column of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its Arrow type (the storage type, for an extension type).
    pub data_type: DataType,
    /// The CloudQuery extension type, if the column has one.
    pub extension: Option<Extension>,
    /// Whether the column can hold nulls.
    pub nullable: bool,
    /// Part of the table's primary key.
    pub primary_key: bool,
    /// Its values are unique.
    pub unique: bool,
    /// An incremental sync orders by it.
    pub incremental_key: bool,
    /// What the column holds, for people.
    pub description: String,
    /// For a `json` column, the shape of its values ([`metadata::TYPE_SCHEMA`]).
    pub type_schema: Option<String>,
}

impl Column {
    /// A nullable column with no constraints.
    pub fn new(name: &str, data_type: DataType) -> Self {
        Column {
            name: name.into(),
            data_type,
            extension: None,
            nullable: true,
            primary_key: false,
            unique: false,
            incremental_key: false,
            description: String::new(),
            type_schema: None,
        }
    }

    /// A nullable column of a CloudQuery extension type.
    pub fn extension(name: &str, extension: Extension) -> Self {
        Column {
            extension: Some(extension),
            ..Column::new(name, extension.storage_type())
        }
    }

    /// Makes the column part of the primary key (and not nullable).
    pub fn primary_key(mut self) -> Self {
        self.primary_key = true;
        self.nullable = false;
        self
    }

    /// Makes the column not nullable.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }

    /// Marks the column unique.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// Marks the column as the key incremental syncs order by.
    pub fn incremental_key(mut self) -> Self {
        self.incremental_key = true;
        self
    }

    /// Declares the shape of a `json` column's values ([`metadata::TYPE_SCHEMA`]): a JSON
    /// object mapping each key to its Arrow type name.
    pub fn type_schema(mut self, schema: &str) -> Self {
        self.type_schema = Some(schema.into());
        self
    }

    /// Sets the description.
    pub fn describe(mut self, description: &str) -> Self {
        self.description = description.into();
        self
    }

    /// The Arrow field, with its metadata.
    pub fn field(&self) -> Field {
        let mut meta = HashMap::new();
        let mut flag = |key: &str, on: bool| {
            if on {
                meta.insert(key.to_string(), metadata::TRUE.to_string());
            }
        };
        flag(metadata::PRIMARY_KEY, self.primary_key);
        flag(metadata::UNIQUE, self.unique);
        flag(metadata::INCREMENTAL, self.incremental_key);
        if !self.description.is_empty() {
            meta.insert(
                metadata::COLUMN_DESCRIPTION.into(),
                self.description.clone(),
            );
        }
        if let Some(schema) = &self.type_schema {
            meta.insert(metadata::TYPE_SCHEMA.into(), schema.clone());
        }
        if let Some(ext) = self.extension {
            meta.insert(metadata::EXTENSION_NAME.into(), ext.name().into());
            meta.insert(metadata::EXTENSION_METADATA.into(), ext.serialized().into());
        }
        Field::new(&self.name, self.data_type.clone(), self.nullable).with_metadata(meta)
    }

    /// The column a field describes.
    pub fn from_field(field: &Field) -> Self {
        let meta = field.metadata();
        let flag = |key: &str| meta.get(key).is_some_and(|v| v == metadata::TRUE);
        Column {
            name: field.name().clone(),
            data_type: field.data_type().clone(),
            extension: Extension::of(field),
            nullable: field.is_nullable(),
            primary_key: flag(metadata::PRIMARY_KEY),
            unique: flag(metadata::UNIQUE),
            incremental_key: flag(metadata::INCREMENTAL),
            description: meta
                .get(metadata::COLUMN_DESCRIPTION)
                .cloned()
                .unwrap_or_default(),
            type_schema: meta.get(metadata::TYPE_SCHEMA).cloned(),
        }
    }
}

/// A MAC address value: six raw bytes (CloudQuery's form) or `aa:bb:cc:dd:ee:ff` /
/// `aa-bb-...` text.
pub fn parse_mac(value: &[u8]) -> Option<[u8; 6]> {
    if let Ok(raw) = <[u8; 6]>::try_from(value)
        && !raw.iter().all(|b| b.is_ascii_hexdigit())
    {
        return Some(raw);
    }
    let text = std::str::from_utf8(value).ok()?;
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(parts) {
        *slot = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

/// The table name an Arrow schema carries (`cq:table_name`), or `""` if it carries none.
pub fn table_name(schema: &Schema) -> &str {
    schema
        .metadata()
        .get(metadata::TABLE_NAME)
        .map_or("", String::as_str)
}

/// A table: its name, columns and table-level facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name, unique within a source.
    pub name: String,
    /// What the table holds, for people.
    pub description: String,
    /// A human title.
    pub title: String,
    /// The parent table, for a table resolved per parent row.
    pub parent: Option<String>,
    /// Whether the table is synced incrementally.
    pub incremental: bool,
    /// Its columns, in order.
    pub columns: Vec<Column>,
}

impl Table {
    /// A table with no columns yet.
    pub fn new(name: &str) -> Self {
        Table {
            name: name.into(),
            description: String::new(),
            title: String::new(),
            parent: None,
            incremental: false,
            columns: Vec::new(),
        }
    }

    /// Adds a column.
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// Sets the description.
    pub fn describe(mut self, description: &str) -> Self {
        self.description = description.into();
        self
    }

    /// Makes this a child table of `parent`.
    pub fn child_of(mut self, parent: &str) -> Self {
        self.parent = Some(parent.into());
        self
    }

    /// Marks the table as synced incrementally.
    pub fn incremental(mut self) -> Self {
        self.incremental = true;
        self
    }

    /// The names of the primary-key columns, in column order.
    pub fn primary_keys(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The Arrow schema, with the table's metadata.
    pub fn schema(&self) -> SchemaRef {
        let mut meta = HashMap::from([(metadata::TABLE_NAME.to_string(), self.name.clone())]);
        let mut set = |key: &str, value: &str| {
            if !value.is_empty() {
                meta.insert(key.to_string(), value.to_string());
            }
        };
        set(metadata::TABLE_DESCRIPTION, &self.description);
        set(metadata::TABLE_TITLE, &self.title);
        set(
            metadata::TABLE_DEPENDS_ON,
            self.parent.as_deref().unwrap_or(""),
        );
        if self.incremental {
            set(metadata::TABLE_INCREMENTAL, metadata::TRUE);
        }
        let fields: Vec<Field> = self.columns.iter().map(Column::field).collect();
        Arc::new(Schema::new_with_metadata(fields, meta))
    }

    /// The table an Arrow schema describes; fails if it carries no table name.
    pub fn from_schema(schema: &Schema) -> Result<Self> {
        let meta = schema.metadata();
        let name = meta
            .get(metadata::TABLE_NAME)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                Error::internal(format!(
                    "an Arrow schema without `{}` metadata",
                    metadata::TABLE_NAME
                ))
            })?;
        let text = |key: &str| meta.get(key).cloned().unwrap_or_default();
        Ok(Table {
            name: name.clone(),
            description: text(metadata::TABLE_DESCRIPTION),
            title: text(metadata::TABLE_TITLE),
            parent: meta
                .get(metadata::TABLE_DEPENDS_ON)
                .filter(|p| !p.is_empty())
                .cloned(),
            incremental: meta
                .get(metadata::TABLE_INCREMENTAL)
                .is_some_and(|v| v == metadata::TRUE),
            columns: schema
                .fields()
                .iter()
                .map(|f| Column::from_field(f))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_through_its_arrow_schema() {
        let table = Table::new("items")
            .describe("all items")
            .child_of("parents")
            .incremental()
            .column(
                Column::new("id", DataType::Int64)
                    .primary_key()
                    .describe("the id"),
            )
            .column(Column::extension("uid", Extension::Uuid).unique())
            .column(Column::extension("doc", Extension::Json).type_schema(r#"{"a":"utf8"}"#))
            .column(Column::new("seen", DataType::Int64).incremental_key());
        let schema = table.schema();
        assert_eq!(schema.metadata()["cq:table_name"], "items");
        assert_eq!(
            schema.field(0).metadata()["cq:extension:primary_key"],
            "true"
        );
        assert_eq!(schema.field(1).metadata()["ARROW:extension:name"], "uuid");
        assert_eq!(schema.field(1).data_type(), &DataType::FixedSizeBinary(16));
        assert_eq!(Table::from_schema(&schema), Ok(table));
    }

    #[test]
    fn a_schema_without_a_table_name_is_refused() {
        let err = Table::from_schema(&Schema::empty()).unwrap_err();
        assert!(err.message.contains("cq:table_name"), "{err}");
    }
}
