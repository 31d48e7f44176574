//! `new_table_name_template`: the part of Go's `text/template` a table name template can use.
//! CloudQuery executes the template with one field, `.OldName`, so the only useful action is
//! `{{.OldName}}`. Quarry accepts it in Go's spellings (`{{ .OldName }}`, with the `{{- `/` -}}`
//! whitespace trimming) and comments (`{{/* ... */}}`), and refuses any other action when the
//! spec is loaded. (CloudQuery means to check the template at load too, but tests the wrong
//! variable, so a bad template there fails at the first table it is applied to.)

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    OldName,
}

/// Go's template white space: what trim markers remove and what may pad an action.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl Template {
    /// Parses `source`; the error says what is wrong in it.
    pub(crate) fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut trim_next = false;
        while let Some(open) = rest.find("{{") {
            let mut text = &rest[..open];
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            let action = &rest[open + 2..];
            // `{{- ` trims the white space before the action; the marker's space is its own.
            let action = match action.strip_prefix('-') {
                Some(after) if after.starts_with(is_space) => {
                    text = text.trim_end_matches(is_space);
                    &after[1..]
                }
                _ => action,
            };
            parts.push(Part::Text(text.to_string()));
            let close = action
                .find("}}")
                .ok_or_else(|| format!("unclosed action at {:?}", &rest[open..]))?;
            let mut body = &action[..close];
            trim_next = false;
            if let Some(before) = body.strip_suffix('-')
                && before.ends_with(is_space)
            {
                body = &before[..before.len() - 1];
                trim_next = true;
            }
            if body.starts_with("/*") {
                // Go wants a comment right against its delimiters (or trim markers).
                if body.len() < 4 || !body.ends_with("*/") {
                    return Err("comment ends before closing delimiter".to_string());
                }
            } else if body.trim_matches(is_space) == ".OldName" {
                parts.push(Part::OldName);
            } else {
                return Err(format!(
                    "`{{{{{}}}}}` is not supported: the only action a table name template can use is `{{{{.OldName}}}}`",
                    body.trim_matches(is_space)
                ));
            }
            rest = &action[close + 2..];
        }
        let mut text = rest;
        if trim_next {
            text = text.trim_start_matches(is_space);
        }
        parts.push(Part::Text(text.to_string()));
        parts.retain(|p| p != &Part::Text(String::new()));
        Ok(Template { parts })
    }

    /// The template applied to a table's current name.
    pub(crate) fn render(&self, old_name: &str) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::OldName => old_name,
            })
            .collect()
    }
}
