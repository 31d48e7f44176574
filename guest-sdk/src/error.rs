//! The error a plugin returns to the host: a kind the host can act on, and a message for people.

use std::fmt;

/// What kind of failure an [`Error`] is; the host chooses its exit code and advice from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The plugin's `spec:` is not valid; the message names the field.
    InvalidSpec,
    /// Credentials were refused.
    Unauthorized,
    /// A service the plugin needs cannot be reached now; retrying may help.
    Unavailable,
    /// The plugin does not implement this operation.
    NotSupported,
    /// Anything else.
    Internal,
}

/// A plugin's error: its kind and a message that says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// What happened, for people.
    pub message: String,
}

/// The result type of every plugin operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The user's `spec:` is not valid.
    pub fn invalid_spec(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidSpec, message)
    }

    /// The operation is not implemented by this plugin.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotSupported, message)
    }

    /// A service cannot be reached now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Any other failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The same error with `context: ` before its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Error::internal(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::internal(e.to_string())
    }
}
