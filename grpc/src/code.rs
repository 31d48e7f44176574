//! A plugin's error kinds as gRPC status codes, both ways: the one mapping that `quarry serve`,
//! native plugins and the host's gRPC client all use, so a kind survives a round trip.

use quarry_sdk::ErrorKind;
use tonic::Code;

/// The status code that carries `kind`.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidSpec => Code::InvalidArgument,
        ErrorKind::Unauthorized => Code::PermissionDenied,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::NotSupported => Code::Unimplemented,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The kind a status code stands for; codes no kind maps to are [`ErrorKind::Internal`].
pub fn kind(code: Code) -> ErrorKind {
    match code {
        Code::InvalidArgument => ErrorKind::InvalidSpec,
        Code::PermissionDenied | Code::Unauthenticated => ErrorKind::Unauthorized,
        Code::Unavailable => ErrorKind::Unavailable,
        Code::Unimplemented => ErrorKind::NotSupported,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_a_round_trip() {
        for k in [
            ErrorKind::InvalidSpec,
            ErrorKind::Unauthorized,
            ErrorKind::Unavailable,
            ErrorKind::NotSupported,
            ErrorKind::Internal,
        ] {
            assert_eq!(kind(code(k)), k);
        }
        assert_eq!(kind(Code::Unauthenticated), ErrorKind::Unauthorized);
        assert_eq!(kind(Code::DataLoss), ErrorKind::Internal);
    }
}
