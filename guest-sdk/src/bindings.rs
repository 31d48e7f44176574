//! The wit-bindgen bindings of the `source-destination-plugin` world. Plugins never name these: the
//! export macros and [`crate::SyncContext`] wrap them.
//!
//! Every component built with this SDK targets the one world, whatever its kinds: wit-component
//! merges the worlds of every bindings section linked into a module, so generating `source-plugin` and
//! `destination-plugin` separately in one crate would make each component owe both sets of exports anyway.
//! The side a plugin does not implement answers `not-supported`, and `info().kinds` says which
//! sides are real.
#![allow(missing_docs, clippy::all)]

wit_bindgen::generate!({
    world: "source-destination-plugin",
    path: "../wit/plugin@0.1.0",
    pub_export_macro: true,
    export_macro_name: "__export_world",
    default_bindings_module: "quarry_sdk::bindings",
});
