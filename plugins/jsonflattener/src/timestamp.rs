//! Timestamps from text, read the way CloudQuery's flattener reads them: Go's `time.Parse` with
//! each of its layouts in turn, the first that parses winning. Go's parser is layout-driven, so
//! this is a small port of it for just the elements those layouts use, leniencies included (a
//! fractional second after the seconds even when the layout has none, one-digit hours, runs of
//! spaces, case-blind month and weekday names, unchecked weekdays).
//!
//! One difference: Go reads a zone abbreviation (`MST`) as the machine's local zone when it names
//! it, and otherwise reads the wall time as UTC (even `GMT+3`); here every abbreviation is read
//! the second way. CloudQuery's plugins run in UTC containers, where the two agree.

use std::sync::OnceLock;

/// One element of a Go layout.
#[derive(Debug, Clone, Copy)]
enum Element {
    /// Literal text; a space matches any run of spaces.
    Text(&'static str),
    /// `2006`
    Year,
    /// `06`: 69–99 are 19xx, 00–68 are 20xx.
    ShortYear,
    /// `01`
    Month,
    /// `Jan`
    MonthName,
    /// `02`
    Day,
    /// `_2`: space-padded.
    SpaceDay,
    /// `Mon`, parsed and ignored.
    Weekday,
    /// `Monday`, parsed and ignored.
    LongWeekday,
    /// `15`: one or two digits.
    Hour,
    /// `04`
    Minute,
    /// `05`
    Second,
    /// `.000`: exactly three digits.
    Millis,
    /// `.999999999`: optional, any number of digits.
    Fraction,
    /// `MST`
    ZoneName,
    /// `-0700`
    NumericZone,
    /// `Z07:00`: `Z` or `±hh:mm`.
    IsoZone,
}

use Element::*;

/// The layouts CloudQuery tries, in its order: its own three, RFC 3339 (with and without
/// nanoseconds), a date alone, then Go's RFC 822, RFC 850, RFC 1123, RFC 1123 with a numeric
/// zone, Unix `date`, Ruby's and ANSI C's.
const LAYOUTS: [&str; 13] = [
    "2006-01-02T15:04:05.000Z",
    "2006-01-02T15:04:05Z07:00",
    "2006-01-02T15:04:05.999999999Z07:00",
    "2006-01-02T15:04:05Z",
    "2006-01-02 15:04:05",
    "2006-01-02",
    "02 Jan 06 15:04 MST",
    "Monday, 02-Jan-06 15:04:05 MST",
    "Mon, 02 Jan 2006 15:04:05 MST",
    "Mon, 02 Jan 2006 15:04:05 -0700",
    "Mon Jan _2 15:04:05 MST 2006",
    "Mon Jan 02 15:04:05 -0700 2006",
    "Mon Jan _2 15:04:05 2006",
];

/// Go's layout elements, longest first where one starts another.
const ELEMENTS: [(&str, Element); 16] = [
    ("2006", Year),
    ("Z07:00", IsoZone),
    (".999999999", Fraction),
    (".000", Millis),
    ("-0700", NumericZone),
    ("Monday", LongWeekday),
    ("Mon", Weekday),
    ("MST", ZoneName),
    ("Jan", MonthName),
    ("_2", SpaceDay),
    ("01", Month),
    ("02", Day),
    ("06", ShortYear),
    ("15", Hour),
    ("04", Minute),
    ("05", Second),
];

/// A layout's elements, the text between them as [`Text`].
fn elements(layout: &'static str) -> Vec<Element> {
    let mut out = Vec::new();
    let (mut rest, mut text_start) = (layout, 0);
    while !rest.is_empty() {
        let at = layout.len() - rest.len();
        match ELEMENTS.iter().find(|(name, _)| rest.starts_with(name)) {
            Some((name, element)) => {
                if text_start < at {
                    out.push(Text(&layout[text_start..at]));
                }
                out.push(*element);
                rest = &rest[name.len()..];
                text_start = layout.len() - rest.len();
            }
            None => rest = &rest[rest.chars().next().map_or(1, char::len_utf8)..],
        }
    }
    if text_start < layout.len() {
        out.push(Text(&layout[text_start..]));
    }
    out
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Microseconds since the Unix epoch (UTC) of `text`, or `None` if no layout reads it.
pub fn parse_micros(text: &str) -> Option<i64> {
    static PARSED: OnceLock<Vec<Vec<Element>>> = OnceLock::new();
    PARSED
        .get_or_init(|| LAYOUTS.iter().map(|layout| elements(layout)).collect())
        .iter()
        .find_map(|layout| parse_layout(layout, text.as_bytes()))
}

/// What a layout has read so far.
#[derive(Default)]
struct Fields {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i64,
    /// Seconds east of UTC.
    offset: i64,
}

fn parse_layout(layout: &[Element], mut s: &[u8]) -> Option<i64> {
    let mut f = Fields {
        year: 1,
        month: 1,
        day: 1,
        ..Fields::default()
    };
    for (i, element) in layout.iter().enumerate() {
        s = match *element {
            Text(text) => skip(s, text.as_bytes())?,
            Year => {
                let digits = s.get(..4)?;
                f.year = number(digits)?;
                &s[4..]
            }
            ShortYear => {
                let year = number(s.get(..2)?)?;
                f.year = if year >= 69 { 1900 + year } else { 2000 + year };
                &s[2..]
            }
            Month => {
                let (month, rest) = two_digits(s, true)?;
                f.month = month;
                rest
            }
            MonthName => {
                let (index, rest) = name(s, &MONTHS)?;
                f.month = index as i64 + 1;
                rest
            }
            Day => {
                let (day, rest) = two_digits(s, true)?;
                f.day = day;
                rest
            }
            SpaceDay => {
                let s = s.strip_prefix(b" ").unwrap_or(s);
                let (day, rest) = two_digits(s, false)?;
                f.day = day;
                rest
            }
            Weekday => name(s, &WEEKDAYS)?.1,
            LongWeekday => name(s, &LONG_WEEKDAYS)?.1,
            Hour => {
                let (hour, rest) = two_digits(s, false)?;
                f.hour = hour;
                rest
            }
            Minute => {
                let (minute, rest) = two_digits(s, true)?;
                f.minute = minute;
                rest
            }
            Second => {
                let (second, mut rest) = two_digits(s, true)?;
                f.second = second;
                // Go reads a fraction here even when the layout has none, unless one comes next.
                let fraction_next = matches!(layout.get(i + 1), Some(Millis | Fraction));
                if !fraction_next
                    && rest.len() >= 2
                    && matches!(rest[0], b'.' | b',')
                    && rest[1].is_ascii_digit()
                {
                    let n = 1 + rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
                    f.nanos = nanos(&rest[1..n]);
                    rest = &rest[n..];
                }
                rest
            }
            Millis => {
                let part = s.get(..4)?;
                if !matches!(part[0], b'.' | b',') || !part[1..].iter().all(u8::is_ascii_digit) {
                    return None;
                }
                f.nanos = nanos(&part[1..]);
                &s[4..]
            }
            Fraction => {
                if s.len() >= 2 && matches!(s[0], b'.' | b',') && s[1].is_ascii_digit() {
                    let n = 1 + s[1..].iter().take_while(|b| b.is_ascii_digit()).count();
                    f.nanos = nanos(&s[1..n]);
                    &s[n..]
                } else {
                    s
                }
            }
            ZoneName => zone_name(s)?,
            NumericZone => {
                let part = s.get(..5)?;
                f.offset = signed_offset(part[0], &part[1..3], &part[3..5])?;
                &s[5..]
            }
            IsoZone => match s.first() {
                Some(b'Z') => {
                    f.offset = 0;
                    &s[1..]
                }
                _ => {
                    let part = s.get(..6)?;
                    if part[3] != b':' {
                        return None;
                    }
                    f.offset = signed_offset(part[0], &part[1..3], &part[4..6])?;
                    &s[6..]
                }
            },
        };
    }
    if !s.is_empty() {
        return None;
    }
    f.micros()
}

impl Fields {
    /// The instant, after Go's range checks (hour < 24, minute and second < 60, the day in its
    /// month).
    fn micros(&self) -> Option<i64> {
        let valid = (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        if !valid {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let seconds =
            days * 86_400 + self.hour * 3_600 + self.minute * 60 + self.second - self.offset;
        Some(seconds * 1_000_000 + self.nanos / 1_000)
    }
}

/// Go's `skip`: `text` literally, except that a space matches a run of spaces.
fn skip<'a>(mut s: &'a [u8], mut text: &[u8]) -> Option<&'a [u8]> {
    while let Some((&first, rest)) = text.split_first() {
        if first == b' ' {
            if s.first().is_some_and(|&b| b != b' ') {
                return None;
            }
            text = trim_spaces(text);
            s = trim_spaces(s);
            continue;
        }
        if s.first() != Some(&first) {
            return None;
        }
        text = rest;
        s = &s[1..];
    }
    Some(s)
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

/// All of `digits` as a number, if they are all digits.
fn number(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0i64, |n, d| {
        n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

/// Go's `getnum`: two digits, or one when `fixed` is false and no second digit follows.
fn two_digits(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let first = *s.first().filter(|b| b.is_ascii_digit())?;
    match s.get(1).filter(|b| b.is_ascii_digit()) {
        Some(&second) => Some((
            i64::from(first - b'0') * 10 + i64::from(second - b'0'),
            &s[2..],
        )),
        None if fixed => None,
        None => Some((i64::from(first - b'0'), &s[1..])),
    }
}

/// Nanoseconds of the digits after a decimal point; digits past the ninth are dropped.
fn nanos(digits: &[u8]) -> i64 {
    let mut n = 0;
    for i in 0..9 {
        n = n * 10 + digits.get(i).map_or(0, |d| i64::from(d - b'0'));
    }
    n
}

/// The index of the name in `names` that `s` starts with, ignoring ASCII case.
fn name<'a>(s: &'a [u8], names: &[&str]) -> Option<(usize, &'a [u8])> {
    names.iter().enumerate().find_map(|(i, n)| {
        let prefix = s.get(..n.len())?;
        prefix
            .eq_ignore_ascii_case(n.as_bytes())
            .then(|| (i, &s[n.len()..]))
    })
}

/// `±hh` and `mm` as seconds east of UTC; Go allows up to 24 hours and 60 minutes.
fn signed_offset(sign: u8, hours: &[u8], minutes: &[u8]) -> Option<i64> {
    let (hours, _) = two_digits(hours, true)?;
    let (minutes, _) = two_digits(minutes, true)?;
    if hours > 24 || minutes > 60 {
        return None;
    }
    let seconds = (hours * 60 + minutes) * 60;
    match sign {
        b'+' => Some(seconds),
        b'-' => Some(-seconds),
        _ => None,
    }
}

/// Go's `parseTimeZone` for a `MST` element: the rest of `s` after the zone's name. Go gives a
/// name it cannot look up in the local zone no offset: even `GMT+3` only labels the instant it
/// read as UTC (`Time.setLoc` without moving it).
fn zone_name(s: &[u8]) -> Option<&[u8]> {
    if s.starts_with(b"UTC") {
        return Some(&s[3..]);
    }
    if s.len() < 3 {
        return None;
    }
    if s.starts_with(b"ChST") || s.starts_with(b"MeST") {
        return Some(&s[4..]);
    }
    if let Some(after) = s.strip_prefix(b"GMT") {
        return Some(&after[signed_hours_len(after)..]);
    }
    if matches!(s[0], b'+' | b'-') {
        // An unnamed zone such as `+03`.
        let n = signed_hours_len(s);
        return (n > 0).then(|| &s[n..]);
    }
    let upper = s
        .iter()
        .take(6)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    let len = match upper {
        3 => 3,
        4 if s[3] == b'T' || s.starts_with(b"WITA") => 4,
        5 if s[4] == b'T' => 5,
        _ => return None,
    };
    Some(&s[len..])
}

/// Go's `parseSignedOffset`: the length of a sign and at most 23 hours, or 0.
fn signed_hours_len(s: &[u8]) -> usize {
    if !matches!(s.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let digits = s[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    match number(&s[1..1 + digits]) {
        Some(hours) if hours <= 23 => 1 + digits,
        _ => 0,
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`, the
/// inverse of `quarry_sdk::time::civil_from_days`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_split_into_elements_as_go_splits_them() {
        let show = |layout| {
            let shown: Vec<String> = elements(layout).iter().map(|e| format!("{e:?}")).collect();
            shown.join(" ")
        };
        assert_eq!(
            show("Mon, 02 Jan 2006 15:04:05 -0700"),
            r#"Weekday Text(", ") Day Text(" ") MonthName Text(" ") Year Text(" ") Hour Text(":") Minute Text(":") Second Text(" ") NumericZone"#
        );
        assert_eq!(
            show("2006-01-02T15:04:05.999999999Z07:00"),
            r#"Year Text("-") Month Text("-") Day Text("T") Hour Text(":") Minute Text(":") Second Fraction IsoZone"#
        );
        assert_eq!(
            show("2006-01-02T15:04:05.000Z"),
            r#"Year Text("-") Month Text("-") Day Text("T") Hour Text(":") Minute Text(":") Second Millis Text("Z")"#
        );
        assert_eq!(
            show("Monday, 02-Jan-06 15:04:05 MST"),
            r#"LongWeekday Text(", ") Day Text("-") MonthName Text("-") ShortYear Text(" ") Hour Text(":") Minute Text(":") Second Text(" ") ZoneName"#
        );
        assert_eq!(
            show("Mon Jan _2 15:04:05 2006"),
            r#"Weekday Text(" ") MonthName Text(" ") SpaceDay Text(" ") Hour Text(":") Minute Text(":") Second Text(" ") Year"#
        );
    }

    /// 2024-01-02T03:04:05Z in microseconds.
    const BASE: i64 = 1_704_164_645_000_000;

    #[test]
    fn every_layout_cloudquery_tries_is_read() {
        let cases = [
            ("2024-01-02T03:04:05.006Z", BASE + 6_000),
            ("2024-01-02T03:04:05Z", BASE),
            ("2024-01-02T03:04:05+01:00", BASE - 3_600_000_000),
            ("2024-01-02T03:04:05-02:30", BASE + 9_000_000_000),
            ("2024-01-02T03:04:05.123456789Z", BASE + 123_456),
            (
                "2024-01-02T03:04:05.5+01:00",
                BASE + 500_000 - 3_600_000_000,
            ),
            ("2024-01-02T03:04:05,25Z", BASE + 250_000),
            ("2024-01-02T3:04:05Z", BASE),
            ("2024-01-02 03:04:05", BASE),
            ("2024-01-02 03:04:05.000007", BASE + 7),
            ("2024-01-02   03:04:05", BASE),
            (
                "2024-01-02",
                BASE - 3 * 3_600_000_000 - 4 * 60_000_000 - 5_000_000,
            ),
            // RFC 822, 850, 1123 and 1123Z.
            ("02 Jan 24 03:04 UTC", BASE - 5_000_000),
            ("Tuesday, 02-Jan-24 03:04:05 GMT", BASE),
            ("Tue, 02 Jan 2024 03:04:05 GMT", BASE),
            // Go labels the instant with a zone it has no offset for, without moving it.
            ("Tue, 02 Jan 2024 03:04:05 GMT+1", BASE),
            ("Tue, 02 Jan 2024 03:04:05 PST", BASE),
            ("Tue, 02 Jan 2024 03:04:05 -0700", BASE + 7 * 3_600_000_000),
            // Unix `date`, Ruby, ANSI C; weekdays are not checked, names ignore case.
            ("Tue Jan  2 03:04:05 UTC 2024", BASE),
            ("Fri jan 02 03:04:05 +0000 2024", BASE),
            ("Tue Jan  2 03:04:05 2024", BASE),
            ("Tue Jan 12 03:04:05 2024", BASE + 10 * 86_400_000_000),
            // Two-digit years: 69 and later are the 1900s.
            ("01 Jan 69 00:00 UTC", -365 * 86_400_000_000),
            ("1969-12-31T23:59:59.9Z", -100_000),
        ];
        for (text, want) in cases {
            assert_eq!(parse_micros(text), Some(want), "{text}");
        }
    }

    #[test]
    fn text_no_layout_reads_is_none() {
        for text in [
            "",
            "yesterday",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05z",
            "2024-13-02",
            "2023-02-29",
            "2024-01-02T24:00:00Z",
            "2024-01-02T03:60:00Z",
            "2024-01-02T03:04:05+25:00",
            "2024-01-02 extra",
            "24-01-02",
            "2024-1-2",
            "02 Foo 24 03:04 UTC",
            "02 Jan 24 03:04 Utc",
        ] {
            assert_eq!(parse_micros(text), None, "{text:?}");
        }
        assert!(parse_micros("2024-02-29").is_some());
    }

    #[test]
    fn days_count_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        for days in [-800_000, -1, 0, 59, 11_016, 2_932_896] {
            let (y, m, d) = quarry_sdk::time::civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
    }
}
