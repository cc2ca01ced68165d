//! The W3C `traceparent` header: strict parsing of version `00`, formatting, and conversion
//! to and from OpenTelemetry's `SpanContext`.
//!
//! A version-00 value is exactly 55 bytes: `00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>`,
//! lowercase hex only, and neither id may be all zeros
//! ([W3C Trace Context §3.2](https://www.w3.org/TR/trace-context/#traceparent-header)).
//! Anything else is a [`TraceParentError`] that says what is wrong and at which byte.

use std::fmt;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

/// The header's name (lowercase, as `http::HeaderName` wants it).
pub const TRACEPARENT: &str = "traceparent";
/// The companion header carrying vendor state, injected next to `traceparent` when the
/// span context has any.
pub const TRACESTATE: &str = "tracestate";
/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// A parsed `traceparent`: the trace, the caller's span, the trace flags.
///
/// Parsing is strict: a version-00 value is exactly 55 bytes,
/// `00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>`, lowercase hex only, and
/// neither id may be all zeros. Other versions are refused ([`TraceParentError`] says what
/// is wrong and at which byte). `Display` writes the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The W3C trace id (never all zeros).
    pub trace_id: [u8; 16],
    /// The parent's span id (never all zeros).
    pub span_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

/// A field of a `traceparent` value, as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The 2-digit version.
    Version,
    /// The 32-digit trace id.
    TraceId,
    /// The 16-digit parent (span) id.
    ParentId,
    /// The 2-digit trace flags.
    Flags,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Version => "version",
            Field::TraceId => "trace id",
            Field::ParentId => "parent id",
            Field::Flags => "trace flags",
        })
    }
}

/// Why a `traceparent` value was rejected. Offsets count bytes from the value's start.
///
/// Middleware that meets a bad header still serves the request: its fdr task is recorded
/// without an OpenTelemetry link (or linked to the current OpenTelemetry context, if that
/// has a span), and a log in the trace (category `fdr-otel`) gives the task id and this
/// error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceParentError {
    /// The version is valid hex but not `00`, the only version this parser accepts.
    #[error("traceparent version {found:?} is not supported (only \"00\" is)")]
    UnsupportedVersion {
        /// The two version characters.
        found: String,
    },
    /// The value is not 55 bytes long.
    #[error(
        "traceparent is {len} bytes long; version 00 is exactly {TRACEPARENT_LEN} \
         (00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>)"
    )]
    Length {
        /// The value's length in bytes.
        len: usize,
    },
    /// A `-` separator is missing.
    #[error("traceparent byte {offset}: expected '-', found {}", show(*.found))]
    Separator {
        /// Where the separator should be.
        offset: usize,
        /// The byte found there.
        found: u8,
    },
    /// A field has a byte that is not a lowercase hex digit.
    #[error("traceparent byte {offset}: {field} must be lowercase hex, found {}", show(*.found))]
    NotHex {
        /// The field.
        field: Field,
        /// Where the bad byte is.
        offset: usize,
        /// The bad byte.
        found: u8,
    },
    /// The trace id is all zeros, which W3C defines as invalid.
    #[error("traceparent trace id is all zeros (invalid)")]
    ZeroTraceId,
    /// The parent id is all zeros, which W3C defines as invalid.
    #[error("traceparent parent id is all zeros (invalid)")]
    ZeroParentId,
    /// The request carries more than one `traceparent` header.
    #[error("the request has {count} traceparent headers; W3C allows exactly one")]
    Repeated {
        /// How many.
        count: usize,
    },
}

/// A byte for an error message: the character if printable ASCII, else its hex code.
fn show(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("{:?}", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// Parses `len` lowercase hex digits of `field` at `start` of `v` into `out`.
fn hex_into(v: &[u8], start: usize, field: Field, out: &mut [u8]) -> Result<(), TraceParentError> {
    for (i, o) in out.iter_mut().enumerate() {
        let at = start + 2 * i;
        let digit = |offset: usize| {
            let b = v[offset];
            match b {
                b'0'..=b'9' => Ok(b - b'0'),
                b'a'..=b'f' => Ok(b - b'a' + 10),
                _ => Err(TraceParentError::NotHex {
                    field,
                    offset,
                    found: b,
                }),
            }
        };
        *o = (digit(at)? << 4) | digit(at + 1)?;
    }
    Ok(())
}

impl TraceParent {
    /// Parses a `traceparent` header value, strictly (see [`TraceParent`]).
    ///
    /// ```
    /// use fdr_otel::{TraceParent, TraceParentError};
    ///
    /// let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(tp.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
    /// assert!(tp.sampled());
    /// assert_eq!(
    ///     TraceParent::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
    ///     Err(TraceParentError::NotHex { field: fdr_otel::Field::TraceId, offset: 4, found: b'B' }),
    /// );
    /// ```
    pub fn parse(value: &str) -> Result<TraceParent, TraceParentError> {
        Self::parse_bytes(value.as_bytes())
    }

    /// Parses a `traceparent` value from raw header bytes (which need not be UTF-8).
    pub fn parse_bytes(v: &[u8]) -> Result<TraceParent, TraceParentError> {
        // The version first, so a future version is named as such rather than as a bad length.
        if v.len() >= 2 {
            let mut version = [0u8; 1];
            hex_into(v, 0, Field::Version, &mut version)?;
            if version[0] != 0 {
                return Err(TraceParentError::UnsupportedVersion {
                    found: String::from_utf8_lossy(&v[..2]).into_owned(),
                });
            }
        }
        if v.len() != TRACEPARENT_LEN {
            return Err(TraceParentError::Length { len: v.len() });
        }
        for offset in [2, 35, 52] {
            if v[offset] != b'-' {
                return Err(TraceParentError::Separator {
                    offset,
                    found: v[offset],
                });
            }
        }
        let mut tp = TraceParent {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        hex_into(v, 3, Field::TraceId, &mut tp.trace_id)?;
        hex_into(v, 36, Field::ParentId, &mut tp.span_id)?;
        let mut flags = [0u8; 1];
        hex_into(v, 53, Field::Flags, &mut flags)?;
        tp.flags = flags[0];
        if tp.trace_id == [0; 16] {
            return Err(TraceParentError::ZeroTraceId);
        }
        if tp.span_id == [0; 8] {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(tp)
    }

    /// Whether the caller sampled the trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The ids of a span context, if it is valid (non-zero trace and span ids).
    pub fn from_span_context(sc: &SpanContext) -> Option<TraceParent> {
        sc.is_valid().then(|| TraceParent {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
        })
    }

    /// The ids of `cx`'s active span, if it has a valid one.
    pub fn from_context(cx: &Context) -> Option<TraceParent> {
        if !cx.has_active_span() {
            return None;
        }
        Self::from_span_context(cx.span().span_context())
    }

    /// A remote span context with these ids (what a propagator extracts from the header),
    /// to parent OpenTelemetry spans on: `Context::new().with_remote_span_context(..)`.
    pub fn to_span_context(&self) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        )
    }
}

/// Formats the header value: `00-<trace id>-<parent id>-<flags>`, lowercase.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        for b in self.trace_id {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-")?;
        for b in self.span_id {
            write!(f, "{b:02x}")?;
        }
        write!(f, "-{:02x}", self.flags)
    }
}

impl std::str::FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceParent::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// `GOOD` with byte `at` replaced by `b`.
    fn with(at: usize, b: u8) -> Vec<u8> {
        let mut v = GOOD.as_bytes().to_vec();
        v[at] = b;
        v
    }

    #[test]
    fn parses_the_w3c_example_and_formats_it_back() {
        let tp = TraceParent::parse(GOOD).unwrap();
        assert_eq!(
            tp.trace_id,
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(tp.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(tp.flags, 1);
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), GOOD);
        assert_eq!(GOOD.parse::<TraceParent>(), Ok(tp));
    }

    #[test]
    fn keeps_any_flags_and_round_trips_through_a_span_context() {
        let v = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-fe";
        let tp = TraceParent::parse(v).unwrap();
        assert_eq!(tp.flags, 0xfe);
        assert!(!tp.sampled());
        let sc = tp.to_span_context();
        assert!(sc.is_remote() && sc.is_valid());
        assert_eq!(TraceParent::from_span_context(&sc), Some(tp));
        let cx = Context::new().with_remote_span_context(sc);
        assert_eq!(TraceParent::from_context(&cx), Some(tp));
        assert_eq!(TraceParent::from_context(&Context::new()), None);
        assert_eq!(TraceParent::from_span_context(&SpanContext::NONE), None);
    }

    #[test]
    fn the_smallest_non_zero_ids_are_valid() {
        let v = "00-00000000000000000000000000000001-0000000000000001-00";
        let tp = TraceParent::parse(v).unwrap();
        assert_eq!(tp.trace_id[15], 1);
        assert_eq!(tp.span_id[7], 1);
        assert_eq!(tp.to_string(), v);
    }

    #[test]
    fn other_versions_are_refused_by_name() {
        for v in ["01", "cc", "ff"] {
            let value = format!("{v}{}", &GOOD[2..]);
            assert_eq!(
                TraceParent::parse(&value),
                Err(TraceParentError::UnsupportedVersion { found: v.into() })
            );
        }
        // Even a longer future-version value is named by its version, not its length.
        let longer = format!("01{}-extra", &GOOD[2..]);
        assert!(matches!(
            TraceParent::parse(&longer),
            Err(TraceParentError::UnsupportedVersion { .. })
        ));
        assert_eq!(
            TraceParent::parse_bytes(&with(1, b'X')),
            Err(TraceParentError::NotHex {
                field: Field::Version,
                offset: 1,
                found: b'X'
            })
        );
    }

    #[test]
    fn wrong_lengths_are_refused() {
        for len in [0, 1, 2, 3, 54, 56] {
            let mut v = GOOD.as_bytes().to_vec();
            v.resize(len, b'0');
            assert_eq!(
                TraceParent::parse_bytes(&v),
                Err(TraceParentError::Length { len }),
                "length {len}"
            );
        }
        assert_eq!(
            TraceParent::parse(&format!(" {GOOD}")),
            Err(TraceParentError::NotHex {
                field: Field::Version,
                offset: 0,
                found: b' '
            })
        );
        assert_eq!(
            TraceParent::parse(&format!("{GOOD} ")),
            Err(TraceParentError::Length { len: 56 })
        );
    }

    #[test]
    fn missing_separators_are_named_by_offset() {
        for at in [2, 35, 52] {
            assert_eq!(
                TraceParent::parse_bytes(&with(at, b'_')),
                Err(TraceParentError::Separator {
                    offset: at,
                    found: b'_'
                })
            );
        }
    }

    #[test]
    fn non_hex_and_uppercase_bytes_are_named_by_field_and_offset() {
        let cases = [
            (3, Field::TraceId),
            (34, Field::TraceId),
            (36, Field::ParentId),
            (51, Field::ParentId),
            (53, Field::Flags),
            (54, Field::Flags),
        ];
        for (at, field) in cases {
            for bad in [b'g', b'A', b'F', b' ', 0xc3] {
                assert_eq!(
                    TraceParent::parse_bytes(&with(at, bad)),
                    Err(TraceParentError::NotHex {
                        field,
                        offset: at,
                        found: bad
                    }),
                    "byte {at} = {bad:#x}"
                );
            }
        }
    }

    #[test]
    fn all_zero_ids_are_invalid() {
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert_eq!(
            TraceParent::parse(zero_trace),
            Err(TraceParentError::ZeroTraceId)
        );
        let zero_span = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        assert_eq!(
            TraceParent::parse(zero_span),
            Err(TraceParentError::ZeroParentId)
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = TraceParent::parse_bytes(&with(40, b'Z')).unwrap_err();
        assert_eq!(
            e.to_string(),
            "traceparent byte 40: parent id must be lowercase hex, found 'Z'"
        );
        let e = TraceParent::parse_bytes(&with(10, 0xff)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "traceparent byte 10: trace id must be lowercase hex, found byte 0xff"
        );
        let e = TraceParent::parse("00-abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "traceparent is 6 bytes long; version 00 is exactly 55 \
             (00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>)"
        );
        let e = TraceParent::parse_bytes(&with(35, b'+')).unwrap_err();
        assert_eq!(
            e.to_string(),
            "traceparent byte 35: expected '-', found '+'"
        );
        let e = TraceParent::parse(&format!("02{}", &GOOD[2..])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "traceparent version \"02\" is not supported (only \"00\" is)"
        );
    }
}
