//! YAML text to a small node tree that remembers where every key and value was written.
//!
//! `yaml-rust2`'s own `Yaml` type drops positions, and every diagnostic the loader prints needs
//! a `file:line:column`, so the tree is built here from the parser's marked event stream. Scalars
//! keep their text and whether they were plain (unquoted): typing (`5` is an integer, `"5"` a
//! string) happens later (`resolve`), after `${...}` expansion, so that an expanded plain value is
//! typed as YAML would type it.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::NodeError;

mod resolve;

pub(crate) use resolve::Resolved;

/// Nesting deeper than this is refused: the tree is walked recursively (expansion, serde, drop),
/// so unbounded depth would let a hostile spec overflow the stack.
const MAX_DEPTH: usize = 128;

/// Cap on nodes per document, counting the copies that aliases make: stops "billion laughs".
const MAX_NODES: usize = 1_000_000;

/// A position in a YAML file; both fields are 1-based. Ordered by line, then column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// yaml-rust2 markers have 1-based lines but 0-based (character) columns.
    fn from_marker(marker: &Marker) -> Self {
        Pos {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub at: Pos,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in document order; keys are unique (checked while building).
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    pub text: String,
    /// Unquoted and untagged as a string: its type is resolved from its text.
    pub plain: bool,
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar(s) if s.resolve() == Resolved::Null)
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _)| k.key_text() == Some(key)),
            _ => None,
        }
        .map(|(_, value)| value)
    }

    /// The text of a scalar used as a mapping key (keys are always read as strings).
    pub fn key_text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    fn count(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar(_) => 1,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            NodeKind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
        }
    }
}

/// Parses every document of a YAML stream; documents that are empty (or just `null`) are skipped.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Node>, NodeError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // Driven token by token (not `Parser::load`) so that every failure comes back as a value.
    loop {
        let (event, marker) = parser.next_token().map_err(|e| {
            NodeError::at(
                Pos::from_marker(e.marker()),
                format!("invalid YAML: {}", e.info()),
            )
        })?;
        if event == Event::StreamEnd {
            return Ok(builder.documents);
        }
        builder.on_event(event, Pos::from_marker(&marker))?;
    }
}

enum Frame {
    Seq {
        at: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        at: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

#[derive(Default)]
struct Builder {
    documents: Vec<Node>,
    stack: Vec<Frame>,
    root: Option<Node>,
    /// Anchor id to the finished node and its size (for the node budget).
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
}

impl Builder {
    fn on_event(&mut self, event: Event, at: Pos) -> Result<(), NodeError> {
        match event {
            Event::DocumentStart => {
                self.root = None;
                self.anchors.clear();
                self.nodes = 0;
            }
            Event::DocumentEnd => {
                if let Some(root) = self.root.take()
                    && !root.is_null()
                {
                    self.documents.push(root);
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == TScalarStyle::Plain && !is_str_tag(tag.as_ref());
                let node = Node {
                    at,
                    kind: NodeKind::Scalar(Scalar { text, plain }),
                };
                self.finish(node, anchor, 1)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(at)?;
                self.stack.push(Frame::Seq {
                    at,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.open(at)?;
                self.stack.push(Frame::Map {
                    at,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                // The start marker of a block collection can lie after its first key (the
                // scanner emits it late), so a collection starts where its first entry does.
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { at, anchor, items }) => {
                        let at = items.first().map_or(at, |first| at.min(first.at));
                        (
                            Node {
                                at,
                                kind: NodeKind::Seq(items),
                            },
                            anchor,
                        )
                    }
                    Some(Frame::Map {
                        at,
                        anchor,
                        entries,
                        ..
                    }) => {
                        let at = entries.first().map_or(at, |(key, _)| at.min(key.at));
                        (
                            Node {
                                at,
                                kind: NodeKind::Map(merge_keys(entries)?),
                            },
                            anchor,
                        )
                    }
                    None => return Err(NodeError::at(at, "invalid YAML: unbalanced collection")),
                };
                let size = if anchor == 0 { 0 } else { node.count() };
                self.attach(node, anchor, size)?;
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id).cloned() else {
                    return Err(NodeError::at(
                        at,
                        "an alias cannot refer to the collection that contains it",
                    ));
                };
                self.finish(node, 0, size)?;
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
        Ok(())
    }

    fn open(&mut self, at: Pos) -> Result<(), NodeError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(NodeError::at(
                at,
                format!("nesting is deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.count(at, 1)
    }

    fn count(&mut self, at: Pos, nodes: usize) -> Result<(), NodeError> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_NODES {
            return Err(NodeError::at(
                at,
                format!("document has more than {MAX_NODES} values once aliases are expanded"),
            ));
        }
        Ok(())
    }

    /// A new scalar or alias copy: count it, then attach it.
    fn finish(&mut self, node: Node, anchor: usize, size: usize) -> Result<(), NodeError> {
        self.count(node.at, size)?;
        self.attach(node, anchor, size)
    }

    fn attach(&mut self, node: Node, anchor: usize, size: usize) -> Result<(), NodeError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let Some(text) = node.key_text() else {
                        return Err(NodeError::at(node.at, "mapping keys must be strings"));
                    };
                    if let Some((first, _)) =
                        entries.iter().find(|(k, _)| k.key_text() == Some(text))
                    {
                        return Err(NodeError::at(node.at, format!("duplicate key `{text}`"))
                            .with_help(format!(
                                "`{text}` is first set at line {}; remove one of them",
                                first.at.line
                            )));
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// Applies `<<: *base` merge keys (YAML 1.1, still honoured by CloudQuery's Go parser, and the
/// usual way to share settings through anchors). Keys written in the mapping win over merged ones;
/// among merged mappings, earlier ones win.
fn merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, NodeError> {
    let is_merge = |(key, _): &(Node, Node)| match &key.kind {
        NodeKind::Scalar(s) => s.plain && s.text == "<<",
        _ => false,
    };
    if !entries.iter().any(is_merge) {
        return Ok(entries);
    }
    let (merges, mut own): (Vec<_>, Vec<_>) = entries.into_iter().partition(is_merge);
    for (_, value) in merges {
        let at = value.at;
        let sources = match value.kind {
            NodeKind::Map(merged) => vec![merged],
            NodeKind::Seq(items) => items
                .into_iter()
                .map(|item| match item.kind {
                    NodeKind::Map(merged) => Ok(merged),
                    _ => Err(NodeError::at(item.at, "`<<` can only merge mappings")),
                })
                .collect::<Result<_, _>>()?,
            NodeKind::Scalar(_) => return Err(NodeError::at(at, "`<<` can only merge mappings")),
        };
        for (key, value) in sources.into_iter().flatten() {
            if !own.iter().any(|(k, _)| k.key_text() == key.key_text()) {
                own.push((key, value));
            }
        }
    }
    Ok(own)
}

/// `!!str 5` is a string even though it is written plain.
fn is_str_tag(tag: Option<&Tag>) -> bool {
    tag.is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str")
}

#[cfg(test)]
mod tests;
