//! `connection_string`: a URI (`postgres://user:password@host:port/database?sslmode=disable`)
//! or libpq's `key=value` form (`host=127.0.0.1 port=5432 user=app dbname=test`).

use quarry_sdk::{Error, Result};

use crate::tls::{SslMode, Tls};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// Server options sent at startup (libpq's `options`, e.g. `-c search_path=app`).
    pub options: Option<String>,
    /// `sslmode` and `sslrootcert`.
    pub tls: Tls,
}

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::invalid_spec(format!("connection_string: {message}"))
}

impl Config {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let pairs = if let Some(rest) = text
            .strip_prefix("postgres://")
            .or_else(|| text.strip_prefix("postgresql://"))
        {
            uri_pairs(rest)?
        } else {
            keyword_pairs(text)?
        };
        let mut config = Config {
            host: "localhost".into(),
            port: 5432,
            user: "postgres".into(),
            password: None,
            database: String::new(),
            options: None,
            tls: Tls::default(),
        };
        for (key, value) in pairs {
            match key.as_str() {
                "host" | "hostaddr" if value.starts_with('/') => {
                    return Err(invalid(format!(
                        "`{value}` is a Unix socket directory; a plugin connects over TCP only: \
                         use host=127.0.0.1 (and grant it under permissions.network)"
                    )));
                }
                "host" | "hostaddr" if !value.is_empty() => config.host = value,
                "port" => {
                    config.port = value.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                        invalid(format!("port `{value}` is not a number from 1 to 65535"))
                    })?;
                }
                "user" => config.user = value,
                "password" => config.password = Some(value),
                "dbname" => config.database = value,
                "options" => config.options = Some(value),
                "sslmode" => {
                    config.tls.mode = SslMode::parse(&value).ok_or_else(|| {
                        invalid(format!(
                            "sslmode `{value}` is not one of disable, allow, prefer, require, \
                             verify-ca, verify-full"
                        ))
                    })?;
                }
                "sslrootcert" if !value.is_empty() => config.tls.root_cert = Some(value),
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                    return Err(invalid(format!(
                        "`{key}`: client certificates are not supported yet; authenticate with \
                         a password (SCRAM-SHA-256) over sslmode=verify-full"
                    )));
                }
                "connect_timeout" | "application_name" | "host" | "hostaddr" | "sslrootcert" => {}
                other => {
                    return Err(invalid(format!(
                        "unknown parameter `{other}` (known: host, port, user, password, dbname, \
                         options, sslmode, sslrootcert, connect_timeout, application_name)"
                    )));
                }
            }
        }
        if config.database.is_empty() {
            config.database = config.user.clone();
        }
        Ok(config)
    }
}

/// `user:password@host:port/database?key=value&...`, percent-decoded.
fn uri_pairs(rest: &str) -> Result<Vec<(String, String)>> {
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, database) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut pairs = Vec::new();
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            pairs.push(("user".into(), decode(user)?));
        }
        if let Some(p) = password {
            pairs.push(("password".into(), decode(p)?));
        }
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (ip, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid("an IPv6 host in `[` has no closing `]`"))?;
        (ip, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if !host.is_empty() {
        pairs.push(("host".into(), decode(host)?));
    }
    if let Some(port) = port {
        pairs.push(("port".into(), port.to_string()));
    }
    if !database.is_empty() {
        pairs.push(("dbname".into(), decode(database)?));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    Ok(pairs)
}

fn decode(text: &str) -> Result<String> {
    quarry_sdk::sql::percent_decode(text).map_err(invalid)
}

/// `key=value key='quoted value' ...` with `\'` and `\\` escapes inside quotes.
fn keyword_pairs(text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(invalid(format!(
                "expected `key=value` pairs or a postgres:// URI, found `{key}`"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(invalid(format!(
                            "the value of `{key}` has no closing quote"
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_keyword_strings_mean_the_same() {
        let uri =
            Config::parse("postgres://app:p%40ss@127.0.0.1:5433/test?sslmode=disable").unwrap();
        let kv = Config::parse(
            "host=127.0.0.1 port=5433 user=app password='p@ss' dbname=test sslmode=disable",
        )
        .unwrap();
        assert_eq!(uri, kv);
        assert_eq!(uri.password.as_deref(), Some("p@ss"));
        let minimal = Config::parse("postgresql://localhost").unwrap();
        assert_eq!(
            (
                minimal.user.as_str(),
                minimal.database.as_str(),
                minimal.port
            ),
            ("postgres", "postgres", 5432)
        );
    }

    #[test]
    fn what_cannot_work_is_refused_with_the_reason() {
        let err = |s: &str| Config::parse(s).unwrap_err().message;
        assert!(err("host=/var/run/postgresql").contains("Unix socket"));
        assert!(err("postgres://h/db?sslmode=strict").contains("is not one of disable"));
        assert!(err("postgres://h/db?sslcert=c.pem").contains("client certificates"));
        let tls = Config::parse("postgres://h/db?sslmode=verify-full&sslrootcert=ca.pem")
            .unwrap()
            .tls;
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert.as_deref(), Some("ca.pem"));
        assert_eq!(Config::parse("host=h").unwrap().tls.mode, SslMode::Prefer);
        assert!(err("host=h port=99999").contains("port `99999`"));
        assert!(err("host=h colour=blue").contains("unknown parameter `colour`"));
        assert!(err("password='open").contains("no closing quote"));
    }
}
