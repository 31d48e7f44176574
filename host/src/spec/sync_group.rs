//! `sync_group_id`: a destination's label for the rows of one sync, as in CloudQuery. It is a
//! template over the sync's start time (UTC) and id: `{{YEAR}}`, `{{MONTH}}`, `{{DAY}}`,
//! `{{HOUR}}`, `{{MINUTE}}` (zero-padded) and `{{SYNC_ID}}` (`--invocation-id`, else random).

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 6] = ["YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SYNC_ID"];

/// Checks that every `{{...}}` of `template` is a known placeholder and that it renders to
/// something; the message says what is wrong.
pub fn check(template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("`sync_group_id` is empty".into());
    }
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "`sync_group_id` has an unclosed `{{{{` in `{template}`"
            ));
        };
        let name = after[..end].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "`sync_group_id` uses `{{{{{name}}}}}`, which is not a placeholder (known: {})",
                PLACEHOLDERS.map(|p| format!("{{{{{p}}}}}")).join(", ")
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// The template with its placeholders filled for a sync that started at `sync_time_us`
/// (microseconds since the Unix epoch) with id `sync_id`. The template was [`check`]ed.
pub fn render(template: &str, sync_time_us: i64, sync_id: &str) -> String {
    let secs = sync_time_us.div_euclid(1_000_000);
    let (year, month, day) = quarry_sdk::time::civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    let value = |name: &str| match name {
        "YEAR" => format!("{year:04}"),
        "MONTH" => format!("{month:02}"),
        "DAY" => format!("{day:02}"),
        "HOUR" => format!("{:02}", of_day / 3600),
        "MINUTE" => format!("{:02}", of_day % 3600 / 60),
        "SYNC_ID" => sync_id.to_string(),
        other => format!("{{{{{other}}}}}"),
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push_str(&rest[..start]);
        out.push_str(&value(after[..end].trim()));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_from_the_sync_time_in_utc_and_the_sync_id() {
        // 2026-03-04T05:06:07Z
        let us = 1_772_600_767_000_000;
        assert_eq!(
            render(
                "{{YEAR}}-{{MONTH}}-{{DAY}}T{{HOUR}}:{{ MINUTE }} {{SYNC_ID}}",
                us,
                "abc"
            ),
            "2026-03-04T05:06 abc"
        );
        assert_eq!(render("nightly", us, "abc"), "nightly");
    }

    #[test]
    fn unknown_or_unclosed_placeholders_and_empty_templates_are_refused() {
        assert!(check("{{YEAR}}{{SYNC_ID}}").is_ok());
        let err = check("run-{{DATE}}").unwrap_err();
        assert!(
            err.contains("`{{DATE}}`, which is not a placeholder (known: {{YEAR}}"),
            "{err}"
        );
        assert!(check("{{YEAR").unwrap_err().contains("unclosed"));
        assert!(check(" ").is_err());
    }
}
