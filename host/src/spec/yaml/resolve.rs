//! YAML 1.2 core-schema typing of scalars: what `5`, `true`, `~` or `1e3` mean when unquoted.

use super::Scalar;

/// What a scalar means under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    pub fn resolve(&self) -> Resolved<'_> {
        if !self.plain {
            return Resolved::Str(&self.text);
        }
        resolve_plain(&self.text)
    }
}

fn resolve_plain(text: &str) -> Resolved<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(int) = text.parse::<i64>() {
            return Resolved::Int(int);
        }
        if !negative && let Ok(int) = digits.parse::<u64>() {
            return Resolved::UInt(int);
        }
        // Too large for 64 bits: YAML still calls it a number, so keep it as a float.
    }
    for (prefix, radix) in [("0x", 16), ("0o", 8)] {
        if let Some(rest) = text.strip_prefix(prefix)
            && let Ok(int) = u64::from_str_radix(rest, radix)
            && !rest.starts_with('+')
        {
            return match i64::try_from(int) {
                Ok(int) => Resolved::Int(int),
                Err(_) => Resolved::UInt(int),
            };
        }
    }
    if looks_like_float(digits)
        && let Ok(float) = text.parse::<f64>()
    {
        return Resolved::Float(float);
    }
    Resolved::Str(text)
}

/// `(\.[0-9]+ | [0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` without the sign: Rust's float parser also
/// takes `inf`, `nan` and `infinity`, which YAML reads as strings.
fn looks_like_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(whole) && all_digits(fraction) && whole.len() + fraction.len() > 0;
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_plain_scalars_like_yaml() {
        let cases = [
            ("5", Resolved::Int(5)),
            ("-5", Resolved::Int(-5)),
            ("0x1f", Resolved::Int(31)),
            ("18446744073709551615", Resolved::UInt(u64::MAX)),
            ("1.5", Resolved::Float(1.5)),
            ("1e3", Resolved::Float(1000.0)),
            ("true", Resolved::Bool(true)),
            ("~", Resolved::Null),
            ("", Resolved::Null),
            ("inf", Resolved::Str("inf")),
            ("1h30m", Resolved::Str("1h30m")),
            ("0x", Resolved::Str("0x")),
        ];
        for (text, expected) in cases {
            assert_eq!(resolve_plain(text), expected, "{text}");
        }
        let quoted = Scalar {
            text: "5".into(),
            plain: false,
        };
        assert_eq!(quoted.resolve(), Resolved::Str("5"));
    }
}
