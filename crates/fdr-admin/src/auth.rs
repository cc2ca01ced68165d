//! Authentication: a bearer token or HTTP basic credentials, compared in constant time.

use hyper::HeaderMap;
use hyper::header::{AUTHORIZATION, HeaderValue};

use crate::{ConfigError, Error};

/// What a request must present; nothing when neither is set.
#[derive(Default)]
pub(crate) struct Auth {
    /// The bearer token's bytes.
    bearer: Option<Vec<u8>>,
    /// `base64("user:password")`, as a client sends it.
    basic: Option<Vec<u8>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("Auth")
            .field("bearer", &self.bearer.is_some())
            .field("basic", &self.basic.is_some())
            .finish()
    }
}

impl Auth {
    /// Checks the credentials' shape.
    pub(crate) fn new(
        bearer: Option<&str>,
        basic: Option<&(String, String)>,
    ) -> Result<Auth, Error> {
        if let Some(t) = bearer
            && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(Error::Config(ConfigError::BearerToken));
        }
        if let Some((user, password)) = basic {
            if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                return Err(Error::Config(ConfigError::BasicAuthUser));
            }
            if password.is_empty() || password.chars().any(char::is_control) {
                return Err(Error::Config(ConfigError::BasicAuthPassword));
            }
        }
        Ok(Auth {
            bearer: bearer.map(|t| t.as_bytes().to_vec()),
            basic: basic.map(|(u, p)| base64(format!("{u}:{p}").as_bytes()).into_bytes()),
        })
    }

    /// Whether any authentication is required.
    pub(crate) fn required(&self) -> bool {
        self.bearer.is_some() || self.basic.is_some()
    }

    /// Whether the request may pass.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        if !self.required() {
            return true;
        }
        let Some(value) = headers.get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some(space) = value.iter().position(|&b| b == b' ') else {
            return false;
        };
        let (scheme, rest) = value.split_at(space);
        let presented = trim_spaces(rest);
        let expected = if scheme.eq_ignore_ascii_case(b"bearer") {
            &self.bearer
        } else if scheme.eq_ignore_ascii_case(b"basic") {
            &self.basic
        } else {
            &None
        };
        expected
            .as_deref()
            .is_some_and(|e| constant_time_eq(presented, e))
    }

    /// The `WWW-Authenticate` challenges for a 401 (realm `fdr-admin`).
    pub(crate) fn challenges(&self) -> Vec<HeaderValue> {
        let mut out = Vec::new();
        if self.bearer.is_some() {
            out.push(HeaderValue::from_static("Bearer realm=\"fdr-admin\""));
        }
        if self.basic.is_some() {
            out.push(HeaderValue::from_static(
                "Basic realm=\"fdr-admin\", charset=\"UTF-8\"",
            ));
        }
        out
    }
}

fn trim_spaces(mut b: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' '] = b {
        b = rest;
    }
    b
}

/// Compares `presented` with `expected` in time that depends only on `expected`'s length.
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(presented.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= presented.get(i).copied().unwrap_or(!e) ^ e;
    }
    std::hint::black_box(diff) == 0
}

/// Standard base64 with padding (RFC 4648), as HTTP basic authentication uses.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret!", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        // A presented prefix padded with what `!e` would be must not pass either.
        assert!(!constant_time_eq(b"s", b"s\0"));
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn schemes_are_case_insensitive_and_credentials_exact() {
        let basic = ("ops".to_owned(), "pw".to_owned());
        let a = Auth::new(Some("t0k3n"), Some(&basic)).unwrap();
        assert!(a.allows(&headers("Bearer t0k3n")));
        assert!(a.allows(&headers("bearer   t0k3n ")));
        assert!(!a.allows(&headers("Bearer t0k3")));
        assert!(!a.allows(&headers("Token t0k3n")));
        assert!(a.allows(&headers(&format!("Basic {}", base64(b"ops:pw")))));
        assert!(!a.allows(&headers(&format!("Basic {}", base64(b"ops:px")))));
        assert!(!a.allows(&HeaderMap::new()));
        assert!(Auth::default().allows(&HeaderMap::new()));
        assert!(Auth::new(Some("has space"), None).is_err());
        assert!(Auth::new(None, Some(&("a:b".into(), "c".into()))).is_err());
    }
}
