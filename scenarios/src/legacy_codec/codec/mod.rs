//! Message formats: `v2:<utf-8 text>` and the legacy `v1:<code page>:<text>`.

pub(crate) mod legacy;

use std::fmt;
use std::net::SocketAddr;

/// A decoded message.
pub(crate) struct Message {
    /// Which format it came in.
    pub(crate) format: &'static str,
    /// Its text.
    pub(crate) text: String,
}

/// Why a message could not be decoded.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// Neither `v1:` nor `v2:`.
    UnknownFormat,
    /// The text is not valid in its encoding.
    BadText,
    /// The code page could not be resolved.
    CodePage(std::io::Error),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownFormat => write!(f, "unknown message format"),
            DecodeError::BadText => write!(f, "text not valid in its encoding"),
            DecodeError::CodePage(e) => write!(f, "code page lookup failed: {e}"),
        }
    }
}

/// Decodes a message in either format.
pub(crate) fn decode(raw: &[u8], dictionary: SocketAddr) -> Result<Message, DecodeError> {
    if let Some(rest) = raw.strip_prefix(b"v2:") {
        let text = std::str::from_utf8(rest).map_err(|_| DecodeError::BadText)?;
        return Ok(Message {
            format: "v2",
            text: text.to_string(),
        });
    }
    if let Some(rest) = raw.strip_prefix(b"v1:") {
        return legacy::decode(rest, dictionary);
    }
    Err(DecodeError::UnknownFormat)
}
