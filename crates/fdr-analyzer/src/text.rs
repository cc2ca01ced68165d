//! Small helpers for human-readable output.
//!
//! Every string a trace supplies (names, messages, sites, thread and program names) goes
//! through [`esc`] before it reaches text output, so a trace cannot write control
//! characters to a terminal or forge an output line; JSON output is escaped by serde.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::Write;

thread_local! {
    /// Whether text views on this thread colour their output (see [`with_color`]).
    static COLOR: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with colour in the text views it renders on this thread set to `on` (off by
/// default): table headers bold, severities and notes in colour, as ANSI SGR sequences.
/// Strings from the trace are escaped before any colour is added, so every escape
/// character in coloured output is one of these sequences.
pub fn with_color<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let old = COLOR.with(|c| c.replace(on));
    let r = f();
    COLOR.with(|c| c.set(old));
    r
}

/// A text style ([`paint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Bold: headers, titles.
    Bold,
    /// Bold red: critical findings, errors.
    Red,
    /// Yellow: warnings, notes of what was left out.
    Yellow,
    /// Green: what improved.
    Green,
    /// Dim: informational.
    Dim,
}

/// `s` in `style` when colour is on ([`with_color`]), as is otherwise.
pub fn paint(style: Style, s: &str) -> Cow<'_, str> {
    if !COLOR.with(Cell::get) {
        return Cow::Borrowed(s);
    }
    let code = match style {
        Style::Bold => "1",
        Style::Red => "1;31",
        Style::Yellow => "33",
        Style::Green => "32",
        Style::Dim => "2",
    };
    Cow::Owned(format!("\x1b[{code}m{s}\x1b[0m"))
}

/// Most bytes of a trace's name shown in an analysis (longer ones are cut, ending in `…`).
pub const MAX_SHOWN_BYTES: usize = 256;

/// Whether `c` must not reach a terminal as is: C0 and C1 controls, DEL, the line and
/// paragraph separators, and the bidirectional-text controls that reorder how a line is
/// displayed.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` made safe for a terminal: `\n`, `\r` and `\t` as those two characters, other
/// control characters as `\xNN` (C0, DEL) or `\u{NNNN}` (C1, bidirectional controls).
/// Borrowed when there is nothing to escape.
pub fn esc(s: &str) -> Cow<'_, str> {
    // Printable ASCII (most names) needs no look at characters.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) || !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` cut to at most [`MAX_SHOWN_BYTES`] (at a character boundary), ending in `…` when
/// cut.
pub fn clip(s: Cow<'_, str>) -> Cow<'_, str> {
    if s.len() <= MAX_SHOWN_BYTES {
        return s;
    }
    let mut end = MAX_SHOWN_BYTES - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// A duration in nanoseconds as `850ns`, `12.3us`, `4.56ms`, `1.20s`.
pub fn dur(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", f / 1e6)
    } else {
        format!("{:.2}s", f / 1e9)
    }
}

/// A signed duration, with its sign.
pub fn signed_dur(ns: i128) -> String {
    let sign = if ns < 0 { "-" } else { "+" };
    format!(
        "{sign}{}",
        dur(ns.unsigned_abs().min(u64::MAX as u128) as u64)
    )
}

/// Days since 1970-01-01 to a civil date (proleptic Gregorian): year, month, day (Howard
/// Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i128) -> (i128, i128, i128) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i128::from(m <= 2), m, d)
}

/// Wall-clock Unix nanoseconds as a UTC time, `2025-06-15T14:13:20.123456Z` (to the
/// microsecond; years outside 0..=9999 are shown as a count of seconds).
pub fn wall(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let micros = unix_ns.rem_euclid(1_000_000_000) / 1_000;
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return format!("unix {secs}s");
    }
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// `v` in decimal, written into the end of `buf`: the digits are the returned text. For
/// writers that print a number per event (`fdr cat`, the Chrome JSON export), without the
/// formatter's machinery.
pub(crate) fn decimal(v: u64, buf: &mut [u8; 20]) -> &str {
    let mut v = v;
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // The bytes are ASCII digits.
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

/// [`wall`] for many times in order: the text up to the second is kept and made again
/// only when the second changes (a line per event of `fdr cat` would otherwise work out
/// a calendar date for each).
#[derive(Debug, Default)]
pub struct WallClock {
    /// The second of `prefix`, and `prefix`: `2025-06-15T15:06:40`, or empty when that
    /// second is outside years 0-9999 (then [`wall`] is used whole).
    second: Option<i128>,
    prefix: String,
}

impl WallClock {
    /// Appends [`wall`]`(unix_ns)` to `out`.
    pub fn push(&mut self, unix_ns: i128, out: &mut String) {
        let secs = unix_ns.div_euclid(1_000_000_000);
        if self.second != Some(secs) {
            self.second = Some(secs);
            self.prefix = wall(secs.saturating_mul(1_000_000_000));
            // `...T15:06:40.000000Z` without its fraction; `unix Ns` forms stay whole.
            match self.prefix.strip_suffix(".000000Z") {
                Some(p) => self.prefix.truncate(p.len()),
                None => self.prefix.clear(),
            }
        }
        if self.prefix.is_empty() {
            out.push_str(&wall(unix_ns));
            return;
        }
        let micros = (unix_ns.rem_euclid(1_000_000_000) / 1_000) as u64;
        out.push_str(&self.prefix);
        out.push('.');
        let mut buf = [0u8; 20];
        let digits = decimal(micros, &mut buf);
        out.push_str(&"000000"[digits.len()..]);
        out.push_str(digits);
        out.push('Z');
    }
}

/// A time in a trace: `+1.20s`, and the wall clock when the trace has one
/// (`+1.20s (2025-06-15T14:13:21.200000Z)`).
pub fn at(ns: u64, origin_wall_unix_ns: Option<i128>) -> String {
    match origin_wall_unix_ns {
        Some(w) => format!("+{} ({})", dur(ns), wall(w.saturating_add(i128::from(ns)))),
        None => format!("+{}", dur(ns)),
    }
}

/// A fraction as a percentage with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// A left-aligned text table: `header` then `rows`, columns padded to their widest cell;
/// columns after the first are right-aligned. Cells are escaped with [`esc`].
pub fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let n = header.len();
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| esc(c)).collect())
        .collect();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>, style: Option<Style>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate().take(n) {
            let pad = w[i].saturating_sub(c.chars().count());
            if i == 0 {
                s.push_str(c);
                s.extend(std::iter::repeat_n(' ', pad));
            } else {
                s.push_str("  ");
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(c);
            }
        }
        let s = s.trim_end();
        let _ = match style {
            Some(st) => writeln!(out, "{}", paint(st, s)),
            None => writeln!(out, "{s}"),
        };
    };
    line(out, &mut header.iter().copied(), Some(Style::Bold));
    for r in &rows {
        line(out, &mut r.iter().map(|c| &**c), None);
    }
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Parses a 32-digit hex OpenTelemetry trace id.
pub fn parse_trace_id(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(dur(850), "850ns");
        assert_eq!(dur(12_345), "12.3us");
        assert_eq!(dur(4_560_000), "4.56ms");
        assert_eq!(dur(1_200_000_000), "1.20s");
        assert_eq!(signed_dur(-1500), "-1.5us");
    }

    #[test]
    fn control_characters_are_escaped_visibly() {
        assert!(matches!(esc("plain text, ünïcode ✓"), Cow::Borrowed(_)));
        assert_eq!(
            esc("a\nb\rc\td\x1b[31me\x00\x7f"),
            "a\\nb\\rc\\td\\x1b[31me\\x00\\x7f"
        );
        assert_eq!(esc("x\u{85}y\u{9b}z"), "x\\u{0085}y\\u{009b}z");
        assert_eq!(esc("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        let mut out = String::new();
        table(&mut out, &["a", "b"], &[vec!["x\ny".into(), "1".into()]]);
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.contains("x\\ny"));
    }

    #[test]
    fn long_names_are_clipped_at_a_character_boundary() {
        assert_eq!(clip("short".into()), "short");
        let long = "é".repeat(300);
        let c = clip(long.as_str().into());
        assert!(
            c.len() <= MAX_SHOWN_BYTES && c.ends_with('…'),
            "{}",
            c.len()
        );
        assert!(c.starts_with("éé"));
    }

    #[test]
    fn wall_clock_matches_wall_across_seconds_days_and_range_ends() {
        let mut clock = WallClock::default();
        let times = [
            0,
            999_999_999,
            1_000_000_000,
            1_750_000_000_123_456_789,
            1_750_000_000_999_999_999,
            1_750_000_001_000_000_000,
            951_868_799_999_999_000,
            951_868_800_000_000_000,
            -1_000,
            -1_000_000_001,
            i128::MAX,
            1_750_000_001_000_000_001,
            i128::MIN,
        ];
        for t in times {
            let mut out = String::from("x");
            clock.push(t, &mut out);
            assert_eq!(out, format!("x{}", wall(t)), "at {t}");
        }
    }

    #[test]
    fn wall_clock_times_are_utc() {
        assert_eq!(wall(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            wall(1_750_000_000_123_456_789),
            "2025-06-15T15:06:40.123456Z"
        );
        assert_eq!(wall(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(wall(-1_000), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            wall(i128::MAX),
            format!("unix {}s", i128::MAX / 1_000_000_000)
        );
        assert_eq!(at(1_500_000, None), "+1.50ms");
        assert_eq!(
            at(1_500_000, Some(0)),
            "+1.50ms (1970-01-01T00:00:00.001500Z)"
        );
    }

    #[test]
    fn colour_is_off_unless_asked_for_and_never_reaches_trace_strings() {
        let mut plain = String::new();
        table(
            &mut plain,
            &["a", "b"],
            &[vec!["x\x1b[31m".into(), "1".into()]],
        );
        assert!(!plain.contains('\x1b'), "{plain}");
        let coloured = with_color(true, || {
            let mut out = String::new();
            table(
                &mut out,
                &["a", "b"],
                &[vec!["x\x1b[31m".into(), "1".into()]],
            );
            out
        });
        assert!(
            coloured.starts_with("\x1b[1ma ") && coloured.contains(" b\x1b[0m\n"),
            "{coloured:?}"
        );
        assert!(coloured.contains("x\\x1b[31m"), "{coloured:?}");
        assert_eq!(paint(Style::Red, "x"), "x");
    }

    #[test]
    fn trace_ids_round_trip() {
        let id = [0xab; 16];
        assert_eq!(parse_trace_id(&hex(&id)), Some(id));
        assert_eq!(parse_trace_id("xyz"), None);
    }
}
