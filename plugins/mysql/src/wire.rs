//! A small blocking MySQL/MariaDB client over `std::net::TcpStream`, which on wasm32-wasip2 runs
//! on `wasi:sockets` and so stays inside the sandbox's network grants. It speaks the classic
//! protocol itself: the v10 handshake with `mysql_native_password` and the fast path of
//! `caching_sha2_password` (an auth switch followed), text-protocol queries with several result
//! sets, and `LOAD DATA LOCAL INFILE` fed from memory.

use std::io::{Read, Write};
use std::net::TcpStream;

use quarry_sdk::{Error, ErrorKind, Result};
use sha1::Sha1;
use sha2::{Digest, Sha256};

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_LONG_FLAG: u32 = 0x4;
const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
const CLIENT_LOCAL_FILES: u32 = 0x80;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_MULTI_STATEMENTS: u32 = 0x1_0000;
const CLIENT_MULTI_RESULTS: u32 = 0x2_0000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x8;
/// utf8mb4_general_ci: every Unicode character, in both directions.
const UTF8MB4: u8 = 45;
const MAX_PACKET: usize = 0xFF_FFFF;
/// The socket is read this much at a time.
const INPUT_BUFFER: usize = 64 * 1024;

/// Where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: Option<String>,
}

/// A server's error: its number, SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    pub state: String,
    pub message: String,
}

impl ServerError {
    fn parse(payload: &[u8]) -> ServerError {
        let code = u16::from_le_bytes([
            payload.get(1).copied().unwrap_or(0),
            payload.get(2).copied().unwrap_or(0),
        ]);
        let rest = payload.get(3..).unwrap_or_default();
        let (state, message) = match rest.split_first() {
            Some((b'#', tail)) if tail.len() >= 5 => {
                (String::from_utf8_lossy(&tail[..5]).into_owned(), &tail[5..])
            }
            _ => (String::new(), rest),
        };
        ServerError {
            code,
            state,
            message: String::from_utf8_lossy(message).into_owned(),
        }
    }

    /// The plugin error: refused credentials (1044, 1045, 1698) are `unauthorized`, a server
    /// going away `unavailable`, the rest `internal`.
    pub fn into_error(self, context: &str) -> Error {
        let kind = match self.code {
            1044 | 1045 | 1698 => ErrorKind::Unauthorized,
            1040 | 1053 | 2006 | 2013 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        };
        Error::new(
            kind,
            format!(
                "{context}: ERROR {} ({}): {}",
                self.code, self.state, self.message
            ),
        )
    }
}

/// A column of a result set, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    /// The protocol's type code (`MYSQL_TYPE_*`).
    pub type_code: u8,
    pub flags: u16,
    pub decimals: u8,
    pub charset: u16,
}

/// One statement's outcome: its columns and rows (values as the text protocol sends them,
/// `None` for NULL), or the rows it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<ColumnDef>,
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
    pub affected_rows: u64,
    /// Warnings the statement raised (a value adjusted to fit its column, say).
    pub warnings: u16,
}

impl QueryResult {
    /// A value as text (for catalog queries).
    pub fn text(&self, row: usize, column: usize) -> Option<String> {
        self.rows
            .get(row)?
            .get(column)?
            .as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// One row of a streamed result ([`Connection::next_row`]): its packet and where each value
/// lies in it.
#[derive(Debug, Default)]
pub struct Row {
    packet: Vec<u8>,
    spans: Vec<Option<(usize, usize)>>,
}

impl Row {
    /// Column `i`'s value as the text protocol sends it, `None` for NULL.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.spans[i].map(|(start, end)| &self.packet[start..end])
    }
}

pub struct Connection {
    stream: TcpStream,
    /// Bytes read from the socket and not yet taken (`input[at..end]`): a read per buffer, not
    /// two per packet.
    input: Box<[u8]>,
    at: usize,
    end: usize,
    sequence: u8,
    /// The columns of the result `start_rows` began, while its rows are read.
    row_columns: usize,
    /// Where we are connected, for messages.
    pub target: String,
}

fn io_error(target: &str, e: std::io::Error) -> Error {
    Error::unavailable(format!("MySQL at {target}: {e}"))
}

/// A length-encoded integer at the front of `data`, and the bytes it took.
fn lenenc(data: &[u8]) -> Option<(u64, usize)> {
    let (&first, rest) = data.split_first()?;
    let take = |n: usize| -> Option<u64> {
        let bytes = rest.get(..n)?;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u64, |v, b| (v << 8) | u64::from(*b)),
        )
    };
    Some(match first {
        0xFC => (take(2)?, 3),
        0xFD => (take(3)?, 4),
        0xFE => (take(8)?, 9),
        n => (u64::from(n), 1),
    })
}

/// A length-encoded string at the front of `data`, and the bytes it took.
fn lenenc_bytes(data: &[u8]) -> Option<(&[u8], usize)> {
    let (len, used) = lenenc(data)?;
    let len = usize::try_from(len).ok()?;
    Some((data.get(used..used + len)?, used + len))
}

fn nul_terminated(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// `mysql_native_password`: SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))).
pub fn scramble_native(password: &str, nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    let mut hasher = Sha1::new();
    hasher.update(nonce);
    hasher.update(stage2);
    xor(&stage1, &hasher.finalize())
}

/// `caching_sha2_password`'s fast path: SHA256(password) XOR SHA256(SHA256(SHA256(password)) +
/// nonce).
pub fn scramble_sha256(password: &str, nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password.as_bytes());
    let stage2 = Sha256::digest(stage1);
    let mut hasher = Sha256::new();
    hasher.update(stage2);
    hasher.update(nonce);
    xor(&stage1, &hasher.finalize())
}

impl Connection {
    /// Connects and authenticates.
    pub fn connect(config: &Config) -> Result<Connection> {
        let target = format!("{}:{}", config.host, config.port);
        let stream = TcpStream::connect((config.host.as_str(), config.port)).map_err(|e| {
            Error::unavailable(format!(
                "cannot connect to MySQL at {target}: {e} (is it running, and is `{target}` \
                 granted under `permissions: {{ network: [...] }}`?)"
            ))
        })?;
        stream.set_nodelay(true).ok();
        let mut conn = Connection {
            stream,
            input: vec![0; INPUT_BUFFER].into_boxed_slice(),
            at: 0,
            end: 0,
            sequence: 0,
            row_columns: 0,
            target,
        };
        conn.handshake(config)?;
        Ok(conn)
    }

    /// Fills `out` from the buffered input, reading the socket as needed.
    fn read_exact(&mut self, mut out: &mut [u8]) -> Result<()> {
        while !out.is_empty() {
            if self.at == self.end {
                // Large values skip the buffer.
                if out.len() >= self.input.len() {
                    return self
                        .stream
                        .read_exact(out)
                        .map_err(|e| io_error(&self.target, e));
                }
                let n = loop {
                    match self.stream.read(&mut self.input) {
                        Ok(0) => {
                            return Err(io_error(
                                &self.target,
                                std::io::ErrorKind::UnexpectedEof.into(),
                            ));
                        }
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io_error(&self.target, e)),
                    }
                };
                (self.at, self.end) = (0, n);
            }
            let n = out.len().min(self.end - self.at);
            out[..n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            out = &mut out[n..];
        }
        Ok(())
    }

    fn read_packet(&mut self) -> Result<Vec<u8>> {
        let mut payload = Vec::new();
        self.read_packet_into(&mut payload)?;
        Ok(payload)
    }

    /// Reads the next packet (joining the parts of one of 16 MiB or more) into `payload`.
    fn read_packet_into(&mut self, payload: &mut Vec<u8>) -> Result<()> {
        payload.clear();
        loop {
            let mut header = [0u8; 4];
            self.read_exact(&mut header)?;
            let len =
                usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            self.sequence = header[3].wrapping_add(1);
            let start = payload.len();
            payload.resize(start + len, 0);
            self.read_exact(&mut payload[start..])?;
            if len < MAX_PACKET {
                return Ok(());
            }
        }
    }

    fn write_packet(&mut self, payload: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 8);
        let mut chunks = payload.chunks(MAX_PACKET).peekable();
        if payload.is_empty() {
            out.extend([0, 0, 0, self.sequence]);
            self.sequence = self.sequence.wrapping_add(1);
        }
        while let Some(chunk) = chunks.next() {
            let len = chunk.len();
            out.extend([
                len as u8,
                (len >> 8) as u8,
                (len >> 16) as u8,
                self.sequence,
            ]);
            out.extend_from_slice(chunk);
            self.sequence = self.sequence.wrapping_add(1);
            // A payload of an exact multiple of the maximum ends with an empty packet.
            if chunks.peek().is_none() && len == MAX_PACKET {
                out.extend([0, 0, 0, self.sequence]);
                self.sequence = self.sequence.wrapping_add(1);
            }
        }
        self.stream
            .write_all(&out)
            .map_err(|e| io_error(&self.target, e))
    }

    fn handshake(&mut self, config: &Config) -> Result<()> {
        let context = format!("MySQL at {} (user `{}`)", self.target, config.user);
        let greeting = self.read_packet()?;
        match greeting.first() {
            Some(10) => {}
            Some(0xFF) => return Err(ServerError::parse(&greeting).into_error(&context)),
            other => {
                return Err(Error::unavailable(format!(
                    "{context}: the server greeted with protocol {other:?}, not 10: is this a \
                     MySQL server?"
                )));
            }
        }
        let (_version, rest) = nul_terminated(&greeting[1..]);
        let short = || Error::internal(format!("{context}: a greeting cut short"));
        let nonce1 = rest.get(4..12).ok_or_else(short)?;
        let caps_low = u16::from_le_bytes([
            *rest.get(13).ok_or_else(short)?,
            *rest.get(14).ok_or_else(short)?,
        ]);
        let caps_high = rest
            .get(18..20)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        let server_caps = u32::from(caps_low) | u32::from(caps_high) << 16;
        let nonce_len = rest.get(20).copied().unwrap_or(0);
        let part2_len = usize::from(nonce_len).saturating_sub(8).max(13);
        let part2 = rest.get(31..31 + part2_len).unwrap_or_default();
        let mut nonce = nonce1.to_vec();
        nonce.extend_from_slice(part2.strip_suffix(&[0]).unwrap_or(part2));
        let plugin = rest
            .get(31 + part2_len..)
            .map(|p| String::from_utf8_lossy(nul_terminated(p).0).into_owned())
            .unwrap_or_else(|| "mysql_native_password".into());
        if server_caps & CLIENT_PROTOCOL_41 == 0 {
            return Err(Error::unavailable(format!(
                "{context}: the server does not speak protocol 4.1; Quarry needs MySQL 5.5+ or MariaDB"
            )));
        }
        let mut caps = CLIENT_LONG_PASSWORD
            | CLIENT_LONG_FLAG
            | CLIENT_LOCAL_FILES
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_MULTI_STATEMENTS
            | CLIENT_MULTI_RESULTS
            | CLIENT_PLUGIN_AUTH;
        if config.database.is_some() {
            caps |= CLIENT_CONNECT_WITH_DB;
        }
        caps &= server_caps | CLIENT_LOCAL_FILES;
        let password = config.password.clone().unwrap_or_default();
        let auth = auth_response(&plugin, &password, &nonce);
        let mut response = Vec::new();
        response.extend(caps.to_le_bytes());
        response.extend((MAX_PACKET as u32).to_le_bytes());
        response.push(UTF8MB4);
        response.extend([0u8; 23]);
        response.extend(config.user.as_bytes());
        response.push(0);
        response.push(auth.len() as u8);
        response.extend(&auth);
        if let Some(db) = &config.database {
            response.extend(db.as_bytes());
            response.push(0);
        }
        response.extend(plugin.as_bytes());
        response.push(0);
        self.write_packet(&response)?;
        loop {
            let answer = self.read_packet()?;
            match answer.first() {
                Some(0x00) => return Ok(()),
                Some(0xFF) => return Err(ServerError::parse(&answer).into_error(&context)),
                // An auth switch: the plugin the account uses, and a new nonce.
                Some(0xFE) => {
                    let (name, data) = nul_terminated(&answer[1..]);
                    let name = String::from_utf8_lossy(name).into_owned();
                    let nonce = data.strip_suffix(&[0]).unwrap_or(data);
                    if name != "mysql_native_password" && name != "caching_sha2_password" {
                        return Err(Error::new(
                            ErrorKind::Unauthorized,
                            format!(
                                "{context}: the account authenticates with `{name}`, which Quarry \
                                 does not speak (mysql_native_password, caching_sha2_password)"
                            ),
                        ));
                    }
                    let auth = auth_response(&name, &password, nonce);
                    self.write_packet(&auth)?;
                }
                // caching_sha2_password: 3 is the fast path's success (an OK follows), 4 asks
                // for the password in clear, which needs TLS.
                Some(0x01) => match answer.get(1) {
                    Some(3) => {}
                    _ => {
                        return Err(Error::new(
                            ErrorKind::Unauthorized,
                            format!(
                                "{context}: caching_sha2_password wants the full exchange (the \
                                 server has not cached this account's password), which needs \
                                 TLS; log in once with the mysql client, or use \
                                 mysql_native_password for this account"
                            ),
                        ));
                    }
                },
                _ => {
                    return Err(Error::internal(format!(
                        "{context}: an unexpected packet during authentication"
                    )));
                }
            }
        }
    }

    /// Runs `sql` (one or more statements) with the text protocol; `local_file` answers a
    /// `LOAD DATA LOCAL INFILE` the statements make (its bytes are the file). On a server error
    /// the connection stays usable.
    pub fn query_with_file(
        &mut self,
        sql: &str,
        local_file: Option<&[u8]>,
    ) -> Result<Vec<QueryResult>> {
        self.send_query(sql)?;
        let context = format!("MySQL at {}", self.target);
        let mut results = Vec::new();
        loop {
            let first = self.read_packet()?;
            let more = match first.first() {
                Some(0x00) => {
                    let (affected, used) = lenenc(&first[1..]).unwrap_or((0, 1));
                    let at = 1 + used;
                    let (_, used_id) = lenenc(&first[at..]).unwrap_or((0, 1));
                    let word = |from: usize| {
                        first
                            .get(from..from + 2)
                            .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
                    };
                    let status = word(at + used_id);
                    results.push(QueryResult {
                        affected_rows: affected,
                        warnings: word(at + used_id + 2),
                        ..QueryResult::default()
                    });
                    status & SERVER_MORE_RESULTS_EXISTS != 0
                }
                Some(0xFF) => return Err(ServerError::parse(&first).into_error(&context)),
                Some(0xFB) => {
                    // LOCAL INFILE: the file's bytes, then an empty packet.
                    let data = local_file.unwrap_or_default();
                    for chunk in data.chunks(1 << 20) {
                        self.write_packet(chunk)?;
                    }
                    self.write_packet(&[])?;
                    continue;
                }
                _ => {
                    let (count, _) = lenenc(&first).ok_or_else(|| {
                        Error::internal(format!("{context}: a result set without a column count"))
                    })?;
                    let (result, more) = self.result_set(count as usize, &context)?;
                    results.push(result);
                    more
                }
            };
            if !more {
                return Ok(results);
            }
        }
    }

    /// Runs `sql`; see [`Connection::query_with_file`].
    pub fn query(&mut self, sql: &str) -> Result<Vec<QueryResult>> {
        self.query_with_file(sql, None)
    }

    fn result_set(&mut self, count: usize, context: &str) -> Result<(QueryResult, bool)> {
        let bad = |what: &str| Error::internal(format!("{context}: {what}"));
        let mut result = QueryResult {
            columns: self.column_defs(count, context)?,
            ..QueryResult::default()
        };
        loop {
            let row = self.read_packet()?;
            match row.first() {
                Some(0xFE) if row.len() < 9 => {
                    let status = row
                        .get(3..5)
                        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]));
                    return Ok((result, status & SERVER_MORE_RESULTS_EXISTS != 0));
                }
                Some(0xFF) => return Err(ServerError::parse(&row).into_error(context)),
                _ => {
                    let mut values = Vec::with_capacity(count);
                    let mut at = 0;
                    for _ in 0..count {
                        if row.get(at) == Some(&0xFB) {
                            values.push(None);
                            at += 1;
                        } else {
                            let (value, used) =
                                lenenc_bytes(&row[at..]).ok_or_else(|| bad("a row cut short"))?;
                            values.push(Some(value.to_vec()));
                            at += used;
                        }
                    }
                    result.rows.push(values);
                }
            }
        }
    }

    /// Sends one `SELECT` and returns its columns; [`Connection::next_row`] then reads its rows
    /// one at a time, so the result is never held in memory. Until the last row is read the
    /// connection can do nothing else: a caller that stops early opens a new one.
    pub fn start_rows(&mut self, sql: &str) -> Result<Vec<ColumnDef>> {
        self.send_query(sql)?;
        let context = format!("MySQL at {}", self.target);
        let first = self.read_packet()?;
        let count = match first.first() {
            Some(0xFF) => return Err(ServerError::parse(&first).into_error(&context)),
            Some(0x00) => {
                return Err(Error::internal(format!(
                    "{context}: `{sql}` returned no rows"
                )));
            }
            _ => lenenc(&first).map(|(n, _)| n as usize).ok_or_else(|| {
                Error::internal(format!("{context}: a result set without a column count"))
            })?,
        };
        self.row_columns = count;
        self.column_defs(count, &context)
    }

    /// Reads the next row of the result [`Connection::start_rows`] began into `row` (its
    /// buffers reused); false after the last.
    pub fn next_row(&mut self, row: &mut Row) -> Result<bool> {
        self.read_packet_into(&mut row.packet)?;
        let packet = &row.packet;
        match packet.first() {
            Some(0xFE) if packet.len() < 9 => return Ok(false),
            Some(0xFF) => {
                let context = format!("MySQL at {}", self.target);
                return Err(ServerError::parse(packet).into_error(&context));
            }
            _ => {}
        }
        row.spans.clear();
        let mut at = 0;
        for _ in 0..self.row_columns {
            if packet.get(at) == Some(&0xFB) {
                row.spans.push(None);
                at += 1;
            } else {
                let (n, used) = packet.get(at..).and_then(lenenc).ok_or_else(|| {
                    Error::internal(format!("MySQL at {}: a row cut short", self.target))
                })?;
                let start = at + used;
                let end = usize::try_from(n)
                    .ok()
                    .and_then(|n| start.checked_add(n))
                    .filter(|end| *end <= packet.len())
                    .ok_or_else(|| {
                        Error::internal(format!("MySQL at {}: a row cut short", self.target))
                    })?;
                row.spans.push(Some((start, end)));
                at = end;
            }
        }
        Ok(true)
    }

    fn column_defs(&mut self, count: usize, context: &str) -> Result<Vec<ColumnDef>> {
        let bad = || Error::internal(format!("{context}: a column definition cut short"));
        let mut columns = Vec::with_capacity(count);
        for _ in 0..count {
            let def = self.read_packet()?;
            let mut at = 0;
            let mut texts = Vec::new();
            for _ in 0..6 {
                let (text, used) = lenenc_bytes(&def[at..]).ok_or_else(bad)?;
                texts.push(text.to_vec());
                at += used;
            }
            // The fixed part: its length (0x0c), charset, length, type, flags, decimals.
            let fixed = def.get(at + 1..at + 11).ok_or_else(bad)?;
            columns.push(ColumnDef {
                name: String::from_utf8_lossy(&texts[4]).into_owned(),
                charset: u16::from_le_bytes([fixed[0], fixed[1]]),
                type_code: fixed[6],
                flags: u16::from_le_bytes([fixed[7], fixed[8]]),
                decimals: fixed[9],
            });
        }
        // The EOF after the definitions.
        self.read_packet()?;
        Ok(columns)
    }

    /// Sends `sql` as a `COM_QUERY`, a new command's sequence starting at 0.
    fn send_query(&mut self, sql: &str) -> Result<()> {
        self.sequence = 0;
        let mut command = Vec::with_capacity(sql.len() + 1);
        command.push(0x03);
        command.extend(sql.as_bytes());
        self.write_packet(&command)
    }

    /// Says goodbye (`COM_QUIT`).
    pub fn close(mut self) -> Result<()> {
        self.sequence = 0;
        self.write_packet(&[0x01])
    }
}

fn auth_response(plugin: &str, password: &str, nonce: &[u8]) -> Vec<u8> {
    match plugin {
        "caching_sha2_password" => scramble_sha256(password, nonce),
        _ => scramble_native(password, nonce),
    }
}

#[cfg(test)]
mod tests {
    //! Against the MariaDB this machine runs on 127.0.0.1:3306 (root, no password).

    use super::*;

    fn root() -> Config {
        Config {
            host: "127.0.0.1".into(),
            port: 3306,
            user: "root".into(),
            password: None,
            database: None,
        }
    }

    #[test]
    fn queries_return_text_rows_nulls_and_several_result_sets() {
        let mut conn = Connection::connect(&root()).expect("MariaDB on 127.0.0.1:3306");
        let results = conn
            .query("select 1 as one, null as nothing, 'héllo' as h; select 2 as two")
            .unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].columns[0].name, "one");
        assert_eq!(
            results[0].rows[0],
            [Some(b"1".to_vec()), None, Some("héllo".as_bytes().to_vec())]
        );
        assert_eq!(results[1].text(0, 0).as_deref(), Some("2"));
        let err = conn.query("select * from quarry_no_such_db.t").unwrap_err();
        assert!(err.message.contains("ERROR 1146 (42S02)"), "{err}");
        // Still usable after the error.
        assert_eq!(
            conn.query("select 3").unwrap()[0].text(0, 0).as_deref(),
            Some("3")
        );
        conn.close().unwrap();
    }

    #[test]
    fn local_infile_loads_rows_from_memory() {
        let mut conn = Connection::connect(&root()).unwrap();
        conn.query("create database if not exists test; create temporary table test.loaded (id bigint, name text)")
            .unwrap();
        let data: String = (0..10_000).map(|i| format!("{i}\tname {i}\n")).collect();
        let results = conn
            .query_with_file(
                "load data local infile 'rows.tsv' into table test.loaded",
                Some(data.as_bytes()),
            )
            .unwrap();
        assert_eq!(results[0].affected_rows, 10_000);
        let sum = conn
            .query("select count(*), sum(id) from test.loaded")
            .unwrap();
        assert_eq!(sum[0].text(0, 1).as_deref(), Some("49995000"));
    }

    #[test]
    fn passwords_are_scrambled_and_refusals_say_unauthorized() {
        let mut conn = Connection::connect(&root()).unwrap();
        conn.query(
            "create user if not exists 'quarry_pw'@'127.0.0.1' identified by 's3cret pw'; \
             grant select on *.* to 'quarry_pw'@'127.0.0.1'",
        )
        .unwrap();
        let user = Config {
            user: "quarry_pw".into(),
            password: Some("s3cret pw".into()),
            ..root()
        };
        let mut ok = Connection::connect(&user).expect("the right password");
        assert_eq!(
            ok.query("select current_user()").unwrap()[0]
                .text(0, 0)
                .as_deref(),
            Some("quarry_pw@127.0.0.1")
        );
        let wrong = Connection::connect(&Config {
            password: Some("nope".into()),
            ..user
        })
        .err()
        .unwrap();
        assert_eq!(wrong.kind, ErrorKind::Unauthorized, "{wrong}");
        assert!(wrong.message.contains("ERROR 1045"), "{wrong}");
        let refused = Connection::connect(&Config { port: 1, ..root() })
            .err()
            .unwrap();
        assert_eq!(refused.kind, ErrorKind::Unavailable);
        assert!(
            refused.message.contains("permissions: { network"),
            "{refused}"
        );
    }

    #[test]
    fn scrambles_match_the_reference_algorithms() {
        // Known answer: SHA1("") is da39a3ee...; an empty password sends nothing.
        assert!(scramble_native("", b"12345678901234567890").is_empty());
        let a = scramble_native("pw", b"abcdefghijklmnopqrst");
        assert_eq!(a.len(), 20);
        // XOR with SHA1(nonce + SHA1(SHA1(pw))) gives back SHA1(pw).
        let stage1 = Sha1::digest(b"pw");
        let mut h = Sha1::new();
        h.update(b"abcdefghijklmnopqrst");
        h.update(Sha1::digest(stage1));
        assert_eq!(xor(&a, &h.finalize()), stage1.to_vec());
        assert_eq!(scramble_sha256("pw", b"n").len(), 32);
        assert_eq!(lenenc(&[0xFC, 0x01, 0x02]), Some((0x0201, 3)));
        assert_eq!(lenenc(&[0xFA]), Some((250, 1)));
    }
}
