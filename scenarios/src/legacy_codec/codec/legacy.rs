//! The legacy `v1` format: `<code page>:<bytes>`, bytes in a single-byte code page whose
//! table comes from the dictionary service. Written for the nightly batch importer, where a
//! blocking lookup per message was fine.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use super::{DecodeError, Message};

/// Decodes a `v1` message body (after `v1:`).
pub(crate) fn decode(rest: &[u8], dictionary: SocketAddr) -> Result<Message, DecodeError> {
    let sep = rest
        .iter()
        .position(|b| *b == b':')
        .ok_or(DecodeError::UnknownFormat)?;
    let (page, bytes) = (&rest[..sep], &rest[sep + 1..]);
    let page = std::str::from_utf8(page).map_err(|_| DecodeError::BadText)?;
    let table = code_page(page, dictionary).map_err(DecodeError::CodePage)?;
    let text = bytes
        .iter()
        .map(|b| if b.is_ascii() { *b as char } else { table })
        .collect();
    Ok(Message { format: "v1", text })
}

/// Resolves a code page with the dictionary service (the replacement character it maps
/// non-ASCII bytes to, in this simplified table).
fn code_page(page: &str, dictionary: SocketAddr) -> std::io::Result<char> {
    let mut stream = TcpStream::connect(dictionary)?;
    stream.set_nodelay(true)?;
    stream.write_all(format!("CODEPAGE {page}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?; // FAULT: legacy-codec
    if reply.starts_with("OK") {
        Ok('\u{FFFD}')
    } else {
        Err(std::io::Error::other(reply.trim_end().to_string()))
    }
}
