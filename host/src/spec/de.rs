//! A `serde::Deserializer` over the YAML node tree.
//!
//! The spec structs are plain `#[derive(Deserialize)]` types; this deserializer is what gives
//! each serde error a position. Every `deserialize_*` call stamps its node's position on an error
//! that has none yet, so the innermost node involved wins: a wrong list item points at the item,
//! an unknown key at the key, a missing field at the mapping that lacks it. Values read under a
//! mapping key get that key as a `` `key`: `` prefix the same way.

use serde::Deserialize;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Error as _, IntoDeserializer, Unexpected, Visitor};

use super::error::NodeError;
use super::yaml::{Node, NodeKind, Resolved};

/// Deserializes `T` from `node`; the error carries a position whenever a node was involved.
pub(crate) fn from_node<'de, T: Deserialize<'de>>(node: &'de Node) -> Result<T, NodeError> {
    T::deserialize(NodeDeserializer(node))
}

#[derive(Clone, Copy)]
pub(crate) struct NodeDeserializer<'a>(&'a Node);

fn unexpected(node: &Node) -> Unexpected<'_> {
    match &node.kind {
        NodeKind::Scalar(scalar) => match scalar.resolve() {
            Resolved::Null => Unexpected::Unit,
            Resolved::Bool(b) => Unexpected::Bool(b),
            Resolved::Int(i) => Unexpected::Signed(i),
            Resolved::UInt(u) => Unexpected::Unsigned(u),
            Resolved::Float(f) => Unexpected::Float(f),
            Resolved::Str(s) => Unexpected::Str(s),
        },
        NodeKind::Seq(_) => Unexpected::Seq,
        NodeKind::Map(_) => Unexpected::Map,
    }
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let node = self.0;
        let result = match &node.kind {
            NodeKind::Scalar(scalar) => match scalar.resolve() {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::UInt(u) => visitor.visit_u64(u),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str(s) => visitor.visit_borrowed_str(s),
            },
            NodeKind::Seq(items) => visitor.visit_seq(SeqAccess {
                items: items.iter(),
            }),
            NodeKind::Map(entries) => visitor.visit_map(MapAccess {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|e| e.or_at(node.at))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let node = self.0;
        let result = if node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        };
        result.map_err(|e| e.or_at(node.at))
    }

    /// Field and variant names are matched on the text as written, never on a typed value: a
    /// key `0:` must not select a struct's first field by index.
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        match &self.0.kind {
            NodeKind::Scalar(scalar) => visitor
                .visit_borrowed_str::<NodeError>(&scalar.text)
                .map_err(|e| e.or_at(self.0.at)),
            _ => self.deserialize_any(visitor),
        }
    }

    /// Only unit variants are spelled in spec files (`write_mode: append`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        let node = self.0;
        let result = match &node.kind {
            NodeKind::Scalar(scalar) if !node.is_null() => {
                visitor.visit_enum(UnitVariant { name: &scalar.text })
            }
            _ => Err(NodeError::invalid_type(unexpected(node), &visitor)),
        };
        result.map_err(|e| e.or_at(node.at))
    }

    /// serde's derived structs also accept a list of fields in order; a spec must use keys.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        match &self.0.kind {
            NodeKind::Map(_) => self.deserialize_any(visitor),
            _ => Err(NodeError::invalid_type(unexpected(self.0), &visitor).or_at(self.0.at)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.or_at(self.0.at))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map
    }
}

struct SeqAccess<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de> {
    type Error = NodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        self.items
            .next()
            .map(|item| seed.deserialize(NodeDeserializer(item)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a (Node, Node)>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de> {
    type Error = NodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NodeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let (key, _) = entry;
        // Keys are strings whatever they look like (`8080:` is the key "8080"), as in JSON.
        let text = key.key_text().unwrap_or_default();
        let key_deserializer = BorrowedStrDeserializer::<NodeError>::new(text);
        seed.deserialize(key_deserializer)
            .map(Some)
            .map_err(|e| e.or_at(key.at))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, NodeError> {
        let Some((key, value)) = self.value.take() else {
            return Err(NodeError::custom("a mapping value was read before its key"));
        };
        seed.deserialize(NodeDeserializer(value))
            .map_err(|e| e.or_field(key.key_text().unwrap_or_default()))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct UnitVariant<'a> {
    name: &'a str,
}

impl<'de> de::EnumAccess<'de> for UnitVariant<'de> {
    type Error = NodeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), NodeError> {
        let variant = seed.deserialize(self.name.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'de> {
    type Error = NodeError;

    fn unit_variant(self) -> Result<(), NodeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        _seed: T,
    ) -> Result<T::Value, NodeError> {
        Err(NodeError::invalid_type(
            Unexpected::UnitVariant,
            &"a value with settings",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _v: V) -> Result<V::Value, NodeError> {
        Err(NodeError::invalid_type(
            Unexpected::UnitVariant,
            &"a value with settings",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, NodeError> {
        Err(NodeError::invalid_type(
            Unexpected::UnitVariant,
            &"a value with settings",
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::spec::yaml::{Pos, parse_documents};

    fn parse(text: &str) -> Node {
        parse_documents(text).unwrap().remove(0)
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        count: u64,
        #[serde(default)]
        on: bool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
        #[serde(default)]
        mode: Mode,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    enum Mode {
        #[default]
        Safe,
        CqIdOnly,
    }

    fn err(text: &str) -> (Pos, String) {
        let node = parse(text);
        let e = from_node::<Outer>(&node).unwrap_err();
        let message = match e.field {
            Some(field) => format!("`{field}`: {}", e.message),
            None => e.message,
        };
        (e.at.unwrap(), message)
    }

    #[test]
    fn reads_structs_enums_and_options() {
        let node = parse("name: x\ninner: {count: 3}\nmode: cq-id-only\n");
        let outer: Outer = from_node(&node).unwrap();
        let expected = Outer {
            name: "x".into(),
            inner: Some(Inner {
                count: 3,
                on: false,
            }),
            mode: Mode::CqIdOnly,
        };
        assert_eq!(outer, expected);
        let node = parse("name: x\ninner: ~\n");
        assert_eq!(from_node::<Outer>(&node).unwrap().inner, None);
    }

    #[test]
    fn errors_point_at_the_innermost_node() {
        let at = |line, column| Pos { line, column };
        assert_eq!(
            err("name: x\ninner:\n  count: 1\n  of: true\n"),
            (
                at(4, 3),
                "`inner`: unknown field `of`, expected `count` or `on`".into()
            )
        );
        assert_eq!(
            err("name: x\ninner:\n  count: -1\n"),
            (
                at(3, 10),
                "`count`: expected a non-negative integer, found integer `-1`".into()
            )
        );
        assert_eq!(
            err("name: x\ninner:\n  on: true\n"),
            (at(3, 3), "`inner`: missing field `count`".into())
        );
        assert_eq!(
            err("name: 12\n"),
            (
                at(1, 7),
                "`name`: expected a string, found integer `12`".into()
            )
        );
        assert_eq!(
            err("name: x\nmode: fast\n"),
            (
                at(2, 7),
                "`mode`: unknown value `fast`, expected `safe` or `cq-id-only`".into()
            )
        );
        assert_eq!(
            err("name: x\ninner: [1]\n"),
            (
                at(2, 8),
                "`inner`: expected struct Inner, found a list".into()
            )
        );
    }

    #[test]
    fn numbers_where_text_is_expected_suggest_quotes() {
        let err = from_node::<Outer>(&parse("name: 1.10\n")).unwrap_err();
        assert_eq!(err.message, "expected a string, found floating point `1.1`");
        assert_eq!(
            err.help.as_deref(),
            Some("put the value in quotes to keep it as text")
        );
    }

    #[test]
    fn numeric_keys_are_strings() {
        let node = parse("8080: a\n0: b\n");
        let map: BTreeMap<String, String> = from_node(&node).unwrap();
        assert_eq!(map.get("0").map(String::as_str), Some("b"));
        let err = from_node::<Inner>(&parse("0: 1\n")).unwrap_err();
        assert_eq!(err.message, "unknown field `0`, expected `count` or `on`");
    }
}
