//! Value shapes that serde's derives do not spell the way spec files do: lists of strings (for a
//! readable "expected a list of strings"), byte sizes (`512MiB`) and durations (`1h30m`).
//! Used with `#[serde(deserialize_with = ...)]`, so one shape is written once for every field.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

pub(crate) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct StringList;
    impl<'de> Visitor<'de> for StringList {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }
    d.deserialize_seq(StringList)
}

pub(crate) fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<ByteSize>::deserialize(d)?.map(|size| size.0))
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Ok(Option::<Span>::deserialize(d)?.map(|span| span.0))
}

struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `512MiB`")
            }
            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }
            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(bytes), &self))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                parse_byte_size(text).map(ByteSize).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

struct Span(Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `30s`")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Span, E> {
                parse_duration(text).map(Span).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `512MiB`, `1GiB`, `64MB`, `100 kB` or a bare number of bytes.
pub(crate) fn parse_byte_size(text: &str) -> Result<u64, String> {
    let unreadable = || format!("cannot read `{text}`; write e.g. 512MiB");
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| unreadable())?;
    let scale: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(unreadable()),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `500ms`, `30s`, `10m`, `1h`, `2d` and sums of them such as `1h30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let unreadable = || format!("cannot read `{text}`; write e.g. 30s, 10m or 1h30m");
    let too_large = || format!("`{text}` is too large");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(unreadable());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits_end].parse().map_err(|_| unreadable())?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "ms" => None,
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3_600),
            "d" => Some(86_400),
            _ => return Err(unreadable()),
        };
        rest = &rest[unit_end..];
        let part = match seconds_per_unit {
            None => Duration::from_millis(number),
            Some(scale) => Duration::from_secs(number.checked_mul(scale).ok_or_else(too_large)?),
        };
        total = total.checked_add(part).ok_or_else(too_large)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_byte_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_byte_size("100 kB"), Ok(100_000));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert_eq!(
            parse_byte_size("12 parsecs"),
            Err("cannot read `12 parsecs`; write e.g. 512MiB".into())
        );
        assert_eq!(
            parse_byte_size("MiB"),
            Err("cannot read `MiB`; write e.g. 512MiB".into())
        );
        assert_eq!(
            parse_byte_size("99999999999TiB"),
            Err("`99999999999TiB` is too large".into())
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        for bad in ["", "30", "s", "1h 30m", "5 weeks", "-1s"] {
            assert_eq!(
                parse_duration(bad),
                Err(format!("cannot read `{bad}`; write e.g. 30s, 10m or 1h30m")),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err("`18446744073709551615h` is too large".into())
        );
    }
}
