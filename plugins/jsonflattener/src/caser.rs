//! Snake case as CloudQuery's SDK spells it (`plugin-sdk/caser`, `Caser.ToSnake`), because the
//! flattened columns' names and the matching of camelCase data against snake_case type schemas
//! must come out the same as CloudQuery's, quirks included: a known initialism is one word
//! (`AccountID` → `account_id`), the longest initialism wins (`HTTPServer` → `https_erver`, since
//! `HTTPS` is one), and a lone trailing `s` joins the word before it (`IDs` → `ids`).
//!
//! CloudQuery mixes byte and character offsets, so the two agree on ASCII keys only; this port
//! counts characters throughout.

/// The SDK's `commonInitialisms` (taken from golint).
const INITIALISMS: &[&str] = &[
    "ACL", "API", "ASCII", "CIDR", "CPU", "CSS", "DNS", "EOF", "FQDN", "GUID", "HTML", "HTTP",
    "HTTPS", "ID", "IP", "IPC", "IPv4", "IPv6", "JSON", "LHS", "PID", "QOS", "QPS", "RAM", "RHS",
    "RPC", "SLA", "SMTP", "SQL", "SSH", "TCP", "TLS", "TTL", "UDP", "UI", "UID", "UUID", "URI",
    "URL", "UTF8", "VM", "XML", "XMPP", "XSRF", "XSS",
];

/// `s` in snake case. The SDK's exceptions (`OAuth`, `IPv4`, `IPv6`) lower-case to what they map
/// to, so plain lower-casing covers them.
pub fn to_snake(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let joined = s.split_whitespace().collect::<Vec<_>>().join("_");
    let rs: Vec<char> = joined.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut last = 0;
    let mut i = 0;
    while i < rs.len() {
        if i > 0 && (rs[i].is_uppercase() || rs[i] == '_') {
            let rest = &rs[last..];
            if let Some(len) = initialism_at(rest) {
                words.push(rest[..len].iter().collect());
                last += len;
                // The SDK jumps to the end of the word and its loop then steps once more, so the
                // first character of the next word never starts a word itself.
                i = last + 1;
                continue;
            }
            if let Some(len) = cap_word(rest) {
                words.push(rest[..len].iter().collect());
                last += len;
                i = last + 1;
                continue;
            }
            words.push(rs[last..i].iter().collect());
            if rs[i] == '_' {
                i += 1;
            }
            last = i;
        }
        i += 1;
    }
    // `last` can pass the end when a word ends on the last character.
    let tail: String = rs.get(last..).unwrap_or_default().iter().collect();
    if !tail.is_empty() {
        // Plurals of initialisms (`CDNs`, `IDs`) stay one word.
        match words.last_mut() {
            Some(word) if tail == "s" => word.push('s'),
            _ => words.push(tail),
        }
    }
    words
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

/// The length of the longest initialism `s` starts with (2 to 5 characters).
fn initialism_at(s: &[char]) -> Option<usize> {
    (1..=s.len().min(5)).rev().find(|&len| {
        let prefix: String = s[..len].iter().collect();
        INITIALISMS.contains(&prefix.as_str())
    })
}

/// The run of capitals `s` starts with, less the last one when a lower-case letter follows it
/// (that capital begins the next word); `None` when that leaves nothing.
fn cap_word(s: &[char]) -> Option<usize> {
    let len = match s.iter().position(|c| !c.is_uppercase()) {
        None => s.len(),
        Some(0) | Some(1) => return None,
        Some(n) => n - 1,
    };
    (len > 0).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::to_snake;

    /// The SDK's own `Test_ToSnake` cases, and the ones the flattener's tests rely on.
    #[test]
    fn matches_the_sdk_caser() {
        let cases = [
            ("TestCamelCase", "test_camel_case"),
            ("AccountID", "account_id"),
            ("IDs", "ids"),
            ("PostgreSQL", "postgre_sql"),
            ("QueryStoreRetention", "query_store_retention"),
            ("testCamelCaseLongString", "test_camel_case_long_string"),
            ("testIPv4", "test_ipv4"),
            ("CoreIPs", "core_ips"),
            ("CoreIps", "core_ips"),
            ("CoreV1", "core_v1"),
            ("APIVersion", "api_version"),
            ("TTLSecondsAfterFinished", "ttl_seconds_after_finished"),
            ("PodCIDRs", "pod_cidrs"),
            ("IAMRoles", "iam_roles"),
            ("testIAM", "test_iam"),
            ("TestAWSMode", "test_aws_mode"),
            ("Hello World", "hello_world"),
            ("Hello wOr ld", "hello_w_or_ld"),
            ("Hello wOrOr ld", "hello_w_or_or_ld"),
            (" H e l l o ", "h_e_l_l_o"),
            ("Hello     World", "hello_world"),
            ("s", "s"),
            ("S", "s"),
            ("", ""),
            ("subColumnOne", "sub_column_one"),
            ("subcolumnOne", "subcolumn_one"),
            ("sub_column_one", "sub_column_one"),
            ("HTTPClient", "http_client"),
            // `HTTPS` is an initialism and the longest one wins.
            ("HTTPServer", "https_erver"),
        ];
        for (input, want) in cases {
            assert_eq!(to_snake(input), want, "to_snake({input:?})");
        }
    }
}
