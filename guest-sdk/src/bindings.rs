//! The wit-bindgen bindings of the `any-plugin` world. Plugins never name these: the
//! export macros and [`crate::SyncContext`] wrap them. The conversions between the WIT enums and
//! the SDK's ([`ErrorKind`], [`WriteMode`]) live at the bottom.
//!
//! Every component built with this SDK targets the one world, whatever its kinds: wit-component
//! merges the worlds of every bindings section linked into a module, so generating `source-plugin` and
//! `destination-plugin` separately in one crate would make each component owe both sets of exports anyway.
//! The side a plugin does not implement answers `not-supported`, and `info().kinds` says which
//! sides are real.
#![allow(missing_docs, clippy::all)]

wit_bindgen::generate!({
    world: "any-plugin",
    path: "../wit/plugin@0.1.0",
    pub_export_macro: true,
    export_macro_name: "__export_world",
    default_bindings_module: "quarry_sdk::bindings",
});

use self::quarry::plugin::types as wit;
use crate::{ErrorKind, WriteMode};

impl From<ErrorKind> for wit::ErrorKind {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidSpec => wit::ErrorKind::InvalidSpec,
            ErrorKind::Unauthorized => wit::ErrorKind::Unauthorized,
            ErrorKind::Unavailable => wit::ErrorKind::Unavailable,
            ErrorKind::NotSupported => wit::ErrorKind::NotSupported,
            ErrorKind::Internal => wit::ErrorKind::Internal,
        }
    }
}

impl From<wit::ErrorKind> for ErrorKind {
    fn from(kind: wit::ErrorKind) -> Self {
        match kind {
            wit::ErrorKind::InvalidSpec => ErrorKind::InvalidSpec,
            wit::ErrorKind::Unauthorized => ErrorKind::Unauthorized,
            wit::ErrorKind::Unavailable => ErrorKind::Unavailable,
            wit::ErrorKind::NotSupported => ErrorKind::NotSupported,
            wit::ErrorKind::Internal => ErrorKind::Internal,
        }
    }
}

impl From<WriteMode> for wit::WriteMode {
    fn from(mode: WriteMode) -> Self {
        match mode {
            WriteMode::Append => wit::WriteMode::Append,
            WriteMode::Overwrite => wit::WriteMode::Overwrite,
            WriteMode::OverwriteDeleteStale => wit::WriteMode::OverwriteDeleteStale,
        }
    }
}
