//! A small blocking PostgreSQL client over `std::net::TcpStream`, which on wasm32-wasip2 runs on
//! `wasi:sockets` and so stays inside the sandbox's network grants. `postgres-protocol` encodes
//! and decodes the messages and does the password exchanges; this module holds the conversation:
//! startup and authentication (trust, cleartext, md5, SCRAM-SHA-256), simple queries,
//! `COPY ... FROM STDIN`, and `COPY ... TO STDOUT` read as a stream.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::tls::{SslMode, Tls};

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{self, sasl};
use postgres_protocol::message::{backend, frontend};
use quarry_sdk::{Error, ErrorKind, Result};

use crate::config::Config;

/// A server's error, with the fields people need: severity, SQLSTATE code, message, detail, hint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerError {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

impl ServerError {
    fn from_fields(mut fields: backend::ErrorFields<'_>) -> Self {
        let mut e = ServerError::default();
        while let Ok(Some(field)) = fields.next() {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'V' => e.severity = value,
                b'S' if e.severity.is_empty() => e.severity = value,
                b'C' => e.code = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                _ => {}
            }
        }
        e
    }

    /// The plugin error for it: credentials refused (class 28) are `unauthorized`, a server that
    /// is going away or not accepting connections (57P, 08) `unavailable`, the rest `internal`.
    pub fn into_error(self, context: &str) -> Error {
        let kind = if self.code.starts_with("28") {
            ErrorKind::Unauthorized
        } else if self.code.starts_with("57P") || self.code.starts_with("08") {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Internal
        };
        Error::new(kind, format!("{context}: {self}"))
    }
}

/// The outcome of one statement of a simple query: its command tag and, for a query that returns
/// rows, the rows as text (`None` for NULL).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub tag: String,
}

/// The connection's byte stream: plain TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct Connection {
    stream: Stream,
    read: BytesMut,
    write: BytesMut,
    /// Where we are connected, for messages.
    pub target: String,
}

fn io_error(target: &str, e: std::io::Error) -> Error {
    Error::unavailable(format!("PostgreSQL at {target}: {e}"))
}

impl Connection {
    /// Connects and authenticates.
    pub fn connect(config: &Config) -> Result<Self> {
        if config.tls.plain_first(&config.host) {
            let mut plain = config.clone();
            plain.tls.mode = SslMode::Disable;
            match Self::connect_as(&plain) {
                // The server refused this client (class 28: "no pg_hba.conf entry ... no
                // encryption" in any language or version): try TLS, as libpq's `allow` does.
                Err(e) if e.kind == ErrorKind::Unauthorized => {}
                other => return other,
            }
        }
        Self::connect_as(config)
    }

    fn connect_as(config: &Config) -> Result<Self> {
        let target = format!("{}:{}", config.host, config.port);
        let stream = TcpStream::connect((config.host.as_str(), config.port)).map_err(|e| {
            Error::unavailable(format!(
                "cannot connect to PostgreSQL at {target}: {e} (is it running, and is \
                 `{target}` granted under `permissions: {{ network: [...] }}`?)"
            ))
        })?;
        // Rows go out in large writes; do not let Nagle hold the small control messages back.
        stream.set_nodelay(true).ok();
        let stream = negotiate(stream, &config.tls, &config.host, &target)?;
        let mut conn = Connection {
            stream,
            read: BytesMut::with_capacity(64 * 1024),
            write: BytesMut::with_capacity(64 * 1024),
            target,
        };
        conn.startup(config)?;
        Ok(conn)
    }

    fn send(&mut self) -> Result<()> {
        self.stream
            .write_all(&self.write)
            .map_err(|e| io_error(&self.target, e))?;
        self.write.clear();
        Ok(())
    }

    fn receive(&mut self) -> Result<backend::Message> {
        loop {
            if let Some(message) =
                backend::Message::parse(&mut self.read).map_err(|e| io_error(&self.target, e))?
            {
                return Ok(message);
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| io_error(&self.target, e))?;
            if n == 0 {
                return Err(Error::unavailable(format!(
                    "PostgreSQL at {} closed the connection",
                    self.target
                )));
            }
            self.read.extend_from_slice(&chunk[..n]);
        }
    }

    fn encode(&self, e: std::io::Error) -> Error {
        Error::internal(format!(
            "PostgreSQL at {}: cannot encode a message: {e}",
            self.target
        ))
    }

    fn startup(&mut self, config: &Config) -> Result<()> {
        let mut params = vec![
            ("user", config.user.as_str()),
            ("database", config.database.as_str()),
            ("client_encoding", "UTF8"),
            ("application_name", "quarry"),
        ];
        if let Some(options) = &config.options {
            params.push(("options", options.as_str()));
        }
        frontend::startup_message(params.iter().copied(), &mut self.write)
            .map_err(|e| self.encode(e))?;
        self.send()?;
        let context = format!("PostgreSQL at {} (user `{}`)", self.target, config.user);
        let password = || {
            config.password.as_deref().ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthorized,
                    format!("{context} asks for a password; put it in the connection string"),
                )
            })
        };
        loop {
            match self.receive()? {
                backend::Message::AuthenticationOk => {}
                backend::Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?.as_bytes(), &mut self.write)
                        .map_err(|e| self.encode(e))?;
                    self.send()?;
                }
                backend::Message::AuthenticationMd5Password(body) => {
                    let hash = authentication::md5_hash(
                        config.user.as_bytes(),
                        password()?.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.write)
                        .map_err(|e| self.encode(e))?;
                    self.send()?;
                }
                backend::Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut scram = false;
                    while let Ok(Some(m)) = mechanisms.next() {
                        scram |= m == sasl::SCRAM_SHA_256;
                    }
                    if !scram {
                        return Err(Error::new(
                            ErrorKind::Unauthorized,
                            format!(
                                "{context} offers no SASL mechanism Quarry speaks (SCRAM-SHA-256)"
                            ),
                        ));
                    }
                    self.scram(password()?)?;
                }
                backend::Message::ErrorResponse(body) => {
                    return Err(ServerError::from_fields(body.fields()).into_error(&context));
                }
                backend::Message::ParameterStatus(_) | backend::Message::BackendKeyData(_) => {}
                backend::Message::NoticeResponse(_) => {}
                backend::Message::ReadyForQuery(_) => return Ok(()),
                other => {
                    return Err(Error::new(
                        ErrorKind::Unauthorized,
                        format!(
                            "{context} asks for an authentication method Quarry does not speak \
                             (message {})",
                            message_name(&other)
                        ),
                    ));
                }
            }
        }
    }

    fn scram(&mut self, password: &str) -> Result<()> {
        let mut scram =
            sasl::ScramSha256::new(password.as_bytes(), sasl::ChannelBinding::unsupported());
        frontend::sasl_initial_response(sasl::SCRAM_SHA_256, scram.message(), &mut self.write)
            .map_err(|e| self.encode(e))?;
        self.send()?;
        let refused =
            |e: std::io::Error| Error::new(ErrorKind::Unauthorized, format!("SCRAM-SHA-256: {e}"));
        match self.receive()? {
            backend::Message::AuthenticationSaslContinue(body) => {
                scram.update(body.data()).map_err(refused)?
            }
            backend::Message::ErrorResponse(body) => {
                return Err(ServerError::from_fields(body.fields()).into_error(&self.target));
            }
            other => return Err(unexpected(&self.target, &other)),
        }
        frontend::sasl_response(scram.message(), &mut self.write).map_err(|e| self.encode(e))?;
        self.send()?;
        match self.receive()? {
            backend::Message::AuthenticationSaslFinal(body) => {
                scram.finish(body.data()).map_err(refused)
            }
            backend::Message::ErrorResponse(body) => {
                Err(ServerError::from_fields(body.fields()).into_error(&self.target))
            }
            other => Err(unexpected(&self.target, &other)),
        }
    }

    /// Runs `sql` (one or more statements) with the simple query protocol. On a server error the
    /// connection is left ready for the next query, and the error says which statement failed.
    pub fn query(&mut self, sql: &str) -> Result<Vec<QueryResult>> {
        frontend::query(sql, &mut self.write).map_err(|e| self.encode(e))?;
        self.send()?;
        let mut results = Vec::new();
        let mut current = QueryResult::default();
        let mut failed = None;
        loop {
            match self.receive()? {
                backend::Message::RowDescription(body) => {
                    let mut fields = body.fields();
                    while let Ok(Some(field)) = fields.next() {
                        current.columns.push(field.name().to_string());
                    }
                }
                backend::Message::DataRow(body) => {
                    let buffer = body.buffer();
                    let mut row = Vec::new();
                    let mut ranges = body.ranges();
                    while let Ok(Some(range)) = ranges.next() {
                        row.push(range.map(|r| String::from_utf8_lossy(&buffer[r]).into_owned()));
                    }
                    current.rows.push(row);
                }
                backend::Message::CommandComplete(body) => {
                    current.tag = body.tag().unwrap_or_default().to_string();
                    results.push(std::mem::take(&mut current));
                }
                backend::Message::EmptyQueryResponse => {}
                backend::Message::ErrorResponse(body) => {
                    failed = Some(ServerError::from_fields(body.fields()));
                }
                backend::Message::CopyInResponse(_) => {
                    // A COPY ... FROM STDIN sent through `query`: refuse it, the server answers
                    // with an error and then ReadyForQuery.
                    frontend::copy_fail(
                        "COPY FROM STDIN needs Connection::copy_in",
                        &mut self.write,
                    )
                    .map_err(|e| self.encode(e))?;
                    self.send()?;
                }
                backend::Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match failed {
            Some(e) => Err(e.into_error(&format!("PostgreSQL at {}", self.target))),
            None => Ok(results),
        }
    }

    /// Runs `COPY ... FROM STDIN` and sends `data` (already in the COPY format the statement
    /// names) in chunks. Returns the number of rows the server reports.
    pub fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<u64> {
        frontend::query(sql, &mut self.write).map_err(|e| self.encode(e))?;
        self.send()?;
        let mut failed = None;
        let mut rows = 0;
        loop {
            match self.receive()? {
                backend::Message::CopyInResponse(_) => {
                    for chunk in data.chunks(1 << 20) {
                        frontend::CopyData::new(chunk)
                            .map_err(|e| self.encode(e))?
                            .write(&mut self.write);
                        self.send()?;
                    }
                    frontend::copy_done(&mut self.write);
                    self.send()?;
                }
                backend::Message::CommandComplete(body) => {
                    let tag = body.tag().unwrap_or_default();
                    rows = tag
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                }
                backend::Message::ErrorResponse(body) => {
                    failed = Some(ServerError::from_fields(body.fields()));
                }
                backend::Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match failed {
            Some(e) => Err(e.into_error(&format!("PostgreSQL at {}: COPY", self.target))),
            None => Ok(rows),
        }
    }

    /// Starts `COPY ... TO STDOUT`; its data comes from [`Connection::copy_out_next`], which
    /// must then be called until it returns `None`. A statement the server refuses is an error
    /// here, and leaves the connection ready for the next query.
    pub fn copy_out_start(&mut self, sql: &str) -> Result<()> {
        frontend::query(sql, &mut self.write).map_err(|e| self.encode(e))?;
        self.send()?;
        let mut failed = None;
        loop {
            match self.receive()? {
                backend::Message::CopyOutResponse(_) => return Ok(()),
                backend::Message::ErrorResponse(body) => {
                    failed = Some(ServerError::from_fields(body.fields()));
                }
                backend::Message::ReadyForQuery(_) => {
                    return Err(match failed {
                        Some(e) => e.into_error(&format!("PostgreSQL at {}", self.target)),
                        None => Error::internal(format!(
                            "PostgreSQL at {}: the statement started no COPY TO STDOUT",
                            self.target
                        )),
                    });
                }
                _ => {}
            }
        }
    }

    /// The next message of data of the COPY [`Connection::copy_out_start`] started (in
    /// PostgreSQL's COPY format: for `FORMAT binary`, the header, one row per message, the
    /// trailer), or `None` once the server has sent everything and is ready for a new query.
    pub fn copy_out_next(&mut self) -> Result<Option<bytes::Bytes>> {
        let mut failed = None;
        loop {
            match self.receive()? {
                backend::Message::CopyData(body) if failed.is_none() => {
                    return Ok(Some(body.into_bytes()));
                }
                backend::Message::ErrorResponse(body) => {
                    failed = Some(ServerError::from_fields(body.fields()));
                }
                backend::Message::ReadyForQuery(_) => {
                    return match failed {
                        Some(e) => Err(e.into_error(&format!("PostgreSQL at {}", self.target))),
                        None => Ok(None),
                    };
                }
                _ => {}
            }
        }
    }

    /// Says goodbye; the server closes its end.
    pub fn close(mut self) -> Result<()> {
        frontend::terminate(&mut self.write);
        self.send()
    }
}

/// Asks the server for TLS (`SSLRequest`) unless `sslmode=disable`, and does the handshake when
/// it agrees; a server that refuses is an error only for the modes that require TLS.
fn negotiate(mut tcp: TcpStream, tls: &Tls, host: &str, target: &str) -> Result<Stream> {
    if tls.mode == SslMode::Disable {
        return Ok(Stream::Plain(tcp));
    }
    let config = tls.client_config()?;
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    tcp.write_all(&request).map_err(|e| io_error(target, e))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .map_err(|e| io_error(target, e))?;
    match answer[0] {
        b'S' => {}
        b'N' if !tls.mode.requires_tls() => return Ok(Stream::Plain(tcp)),
        b'N' => {
            return Err(Error::unavailable(format!(
                "PostgreSQL at {target} does not accept TLS connections, and sslmode={} \
                 requires TLS (turn `ssl` on in the server's configuration, or lower sslmode)",
                tls.mode.as_str()
            )));
        }
        other => {
            return Err(Error::unavailable(format!(
                "PostgreSQL at {target} answered the TLS request with byte {other:#04x}, \
                 neither `S` nor `N`: is this a PostgreSQL server?"
            )));
        }
    }
    let mut session = rustls::ClientConnection::new(config, Tls::server_name(host)?)
        .map_err(|e| Error::internal(format!("TLS to PostgreSQL at {target}: {e}")))?;
    // The handshake now, so a certificate that does not check out is said as such.
    while session.is_handshaking() {
        session.complete_io(&mut tcp).map_err(|e| {
            let how = match tls.mode {
                SslMode::VerifyFull => format!(
                    "sslmode=verify-full checks that a root of {} signed the server's \
                     certificate and that it names `{host}`",
                    roots(tls)
                ),
                SslMode::VerifyCa | SslMode::Require => format!(
                    "sslmode={} checks that a root of {} signed the server's certificate",
                    tls.mode.as_str(),
                    roots(tls)
                ),
                _ => "the server's certificate is not checked in this mode".to_string(),
            };
            Error::unavailable(format!(
                "TLS handshake with PostgreSQL at {target} failed: {e} ({how})"
            ))
        })?;
    }
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(
        session, tcp,
    ))))
}

/// The roots a certificate is checked against, for messages.
fn roots(tls: &Tls) -> String {
    match tls.root_cert.as_deref() {
        None | Some("system") => "the built-in Mozilla roots (sslrootcert=system)".into(),
        Some(path) => format!("sslrootcert `{path}`"),
    }
}

fn message_name(message: &backend::Message) -> &'static str {
    match message {
        backend::Message::AuthenticationGss => "AuthenticationGSS",
        backend::Message::AuthenticationKerberosV5 => "AuthenticationKerberosV5",
        backend::Message::AuthenticationScmCredential => "AuthenticationSCMCredential",
        backend::Message::AuthenticationSspi => "AuthenticationSSPI",
        backend::Message::AuthenticationGssContinue(_) => "AuthenticationGSSContinue",
        _ => "another",
    }
}

fn unexpected(target: &str, message: &backend::Message) -> Error {
    Error::internal(format!(
        "PostgreSQL at {target} sent an unexpected {} message",
        message_name(message)
    ))
}
