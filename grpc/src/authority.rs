//! CloudQuery's CLI dials a plugin's Unix socket with grpc-go's passthrough resolver, so its
//! HTTP/2 requests carry the socket's path as `:authority` (`/tmp/cq-….sock`). The HTTP/2 stack
//! under tonic rejects that as a malformed authority and resets every stream (PROTOCOL_ERROR).
//!
//! So each Unix connection goes through a relay: the client's header blocks are decoded and
//! encoded again with `:authority: localhost` when theirs is not a valid authority; every other
//! frame, and everything the server sends, passes byte for byte. The relay re-encodes every
//! header block of the connection with its own encoder, so the server's HPACK state follows the
//! relay's, not the client's.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest maximum frame size a peer may set, and the server's default: frames the relay
/// writes never exceed it.
const MAX_FRAME: usize = 16_384;
/// What the relay buffers between the two sides.
const BUFFER: usize = 256 * 1024;

/// Starts relaying `client` and returns the end to serve.
pub fn relay<S>(client: S) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (served, inner) = tokio::io::duplex(BUFFER);
    let (client_read, mut client_write) = tokio::io::split(client);
    let (mut inner_read, inner_write) = tokio::io::split(inner);
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut inner_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    tokio::spawn(async move {
        if let Err(e) = rewrite(client_read, inner_write).await {
            tracing::debug!("a Unix-socket connection ended: {e}");
        }
    });
    served
}

/// Whether `value` is a plain `host[:port]` authority. Anything else (grpc-go sends the socket
/// path, percent-encoded: `%2Ftmp%2Fcq-….sock`) is replaced.
fn valid_authority(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(b))
}

/// One header block, with `:authority` fixed, as this connection's encoder writes it.
fn reencode(
    decoder: &mut loona_hpack::Decoder<'_>,
    encoder: &mut loona_hpack::Encoder<'_>,
    block: &[u8],
) -> io::Result<Vec<u8>> {
    let mut headers = decoder
        .decode(block)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("HPACK: {e:?}")))?;
    for (name, value) in &mut headers {
        if name.as_slice() == b":authority" && !valid_authority(value) {
            *value = b"localhost".to_vec();
        }
    }
    Ok(encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))))
}

/// A header block as HEADERS (and CONTINUATION) frames.
fn header_frames(stream: u32, end_stream: bool, block: &[u8], out: &mut Vec<u8>) {
    let mut chunks = block.chunks(MAX_FRAME).peekable();
    let mut first = true;
    if block.is_empty() {
        frame(
            HEADERS,
            END_HEADERS | if end_stream { END_STREAM } else { 0 },
            stream,
            &[],
            out,
        );
        return;
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let (kind, mut flags) = if first {
            (HEADERS, if end_stream { END_STREAM } else { 0 })
        } else {
            (CONTINUATION, 0)
        };
        if last {
            flags |= END_HEADERS;
        }
        frame(kind, flags, stream, chunk, out);
        first = false;
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A header block being collected across CONTINUATION frames.
struct Pending {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

async fn rewrite<R, W>(mut from: R, mut to: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut preface = [0u8; PREFACE.len()];
    from.read_exact(&mut preface).await?;
    to.write_all(&preface).await?;
    if preface != PREFACE {
        // Not HTTP/2: let the server say so.
        tokio::io::copy(&mut from, &mut to).await?;
        return Ok(());
    }
    let mut decoder = loona_hpack::Decoder::new();
    let mut encoder = loona_hpack::Encoder::new();
    let mut pending: Option<Pending> = None;
    let mut header = [0u8; 9];
    let mut out = Vec::new();
    loop {
        match from.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let (kind, flags) = (header[3], header[4]);
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        from.read_exact(&mut payload).await?;
        out.clear();
        match kind {
            HEADERS => {
                let mut start = 0;
                let mut end = payload.len();
                if flags & PADDED != 0 {
                    let pad = *payload.first().unwrap_or(&0) as usize;
                    start = 1;
                    end = end.saturating_sub(pad);
                }
                if flags & PRIORITY != 0 {
                    start += 5;
                }
                let fragment = payload.get(start..end).unwrap_or_default().to_vec();
                let block = Pending {
                    stream,
                    end_stream: flags & END_STREAM != 0,
                    block: fragment,
                };
                if flags & END_HEADERS != 0 {
                    let encoded = reencode(&mut decoder, &mut encoder, &block.block)?;
                    header_frames(block.stream, block.end_stream, &encoded, &mut out);
                } else {
                    pending = Some(block);
                }
            }
            CONTINUATION => {
                let Some(mut block) = pending.take() else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "CONTINUATION without HEADERS",
                    ));
                };
                block.block.extend_from_slice(&payload);
                if flags & END_HEADERS != 0 {
                    let encoded = reencode(&mut decoder, &mut encoder, &block.block)?;
                    header_frames(block.stream, block.end_stream, &encoded, &mut out);
                } else {
                    pending = Some(block);
                }
            }
            _ => {
                out.extend_from_slice(&header);
                out.extend_from_slice(&payload);
            }
        }
        if !out.is_empty() {
            to.write_all(&out).await?;
        }
    }
    to.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_are_not_authorities_and_host_ports_are() {
        assert!(!valid_authority(b"/tmp/cq-abc.sock"));
        assert!(!valid_authority(b"%2Ftmp%2Fcq-abc.sock"));
        assert!(valid_authority(b"localhost"));
        assert!(valid_authority(b"127.0.0.1:7777"));
        assert!(valid_authority(b"[::1]:7777"));
    }

    #[tokio::test]
    async fn a_socket_path_authority_becomes_localhost_and_other_frames_pass_unchanged() {
        let mut client_encoder = loona_hpack::Encoder::new();
        let request = [
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/cloudquery.discovery.v1.Discovery/GetVersions"),
            (b":authority", b"/tmp/cq-abcdef.sock"),
            (b"content-type", b"application/grpc"),
        ];
        let block = client_encoder.encode(request);
        let mut wire = PREFACE.to_vec();
        // A SETTINGS frame, then the request's headers split over HEADERS + CONTINUATION.
        frame(0x4, 0, 0, &[], &mut wire);
        let (a, b) = block.split_at(block.len() / 2);
        frame(HEADERS, 0, 1, a, &mut wire);
        frame(CONTINUATION, END_HEADERS, 1, b, &mut wire);
        frame(0x0, END_STREAM, 1, b"\0\0\0\0\0", &mut wire);

        let mut rewritten = Vec::new();
        rewrite(&wire[..], &mut rewritten).await.unwrap();

        assert!(rewritten.starts_with(PREFACE));
        let mut rest = &rewritten[PREFACE.len()..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            frames.push((rest[3], rest[4], rest[9..9 + len].to_vec()));
            rest = &rest[9 + len..];
        }
        assert_eq!(frames.len(), 3, "settings, one headers frame, data");
        assert_eq!((frames[0].0, frames[0].2.len()), (0x4, 0));
        assert_eq!((frames[1].0, frames[1].1), (HEADERS, END_HEADERS));
        let headers = loona_hpack::Decoder::new().decode(&frames[1].2).unwrap();
        let authority = headers
            .iter()
            .find(|(n, _)| n.as_slice() == b":authority")
            .map(|(_, v)| v.as_slice());
        assert_eq!(authority, Some(&b"localhost"[..]));
        assert_eq!(headers.len(), request.len());
        assert_eq!(frames[2], (0x0, END_STREAM, b"\0\0\0\0\0".to_vec()));
    }
}
