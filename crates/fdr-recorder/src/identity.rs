//! The process's identity in trace headers: host, service, process start, build id, read
//! once from the system and the environment (never on the recording path).
//!
//! Defaults, each overridable in [`Config`](crate::Config):
//! - host: `OTEL_RESOURCE_ATTRIBUTES`' `host.name`, else the kernel's host name
//!   (`/proc/sys/kernel/hostname`), else `HOSTNAME`;
//! - service: `OTEL_SERVICE_NAME`, else `OTEL_RESOURCE_ATTRIBUTES`' `service.name`, else the
//!   program's name;
//! - service version: `OTEL_RESOURCE_ATTRIBUTES`' `service.version`, else empty.
//!
//! The process start (wall clock) and the build id are facts, not settings: the first from
//! `/proc/self/stat` and the boot time in `/proc/stat`, the second from the executable's
//! GNU build-id note; both are left unknown (0, empty) where the platform has no such thing.

use std::sync::OnceLock;

/// The value of `key` in an `OTEL_RESOURCE_ATTRIBUTES` list (`k1=v1,k2=v2`, values
/// percent-encoded as the OpenTelemetry specification says).
pub(crate) fn resource_attribute(attrs: &str, key: &str) -> Option<String> {
    attrs.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| percent_decode(v.trim()))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A variable's value, if set and not empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn otel_attribute(key: &str) -> Option<String> {
    resource_attribute(&var("OTEL_RESOURCE_ATTRIBUTES")?, key).filter(|v| !v.is_empty())
}

/// The host's name (see the module docs).
pub(crate) fn default_host() -> String {
    otel_attribute("host.name")
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .or_else(|| var("HOSTNAME"))
        .unwrap_or_default()
}

/// The service's name (see the module docs); `program` when nothing names it.
pub(crate) fn default_service(program: &str) -> String {
    var("OTEL_SERVICE_NAME")
        .or_else(|| otel_attribute("service.name"))
        .unwrap_or_else(|| program.to_owned())
}

/// The service's version from the environment, or empty.
pub(crate) fn default_service_version() -> String {
    otel_attribute("service.version").unwrap_or_default()
}

/// When this process started, Unix nanoseconds; 0 if unknown. Read once.
pub(crate) fn process_start_unix_ns() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let boot = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        start_from_proc(&stat, &boot).unwrap_or(0)
    })
}

/// `/proc` reports times in `USER_HZ` ticks: 100 a second on every Linux ABI.
const USER_HZ: u64 = 100;

/// The process start from `/proc/self/stat` (field 22, ticks after boot) and `/proc/stat`
/// (`btime`, the boot time in Unix seconds).
pub(crate) fn start_from_proc(stat: &str, proc_stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces and `)`.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields from the 3rd on; the start time is the 22nd.
    let ticks: u64 = after_comm.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let btime: u64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    btime
        .checked_mul(1_000_000_000)?
        .checked_add(ticks.checked_mul(1_000_000_000 / USER_HZ)?)
}

/// The executable's GNU build id in lowercase hex; empty if it has none or cannot be
/// read. Read once.
pub(crate) fn build_id() -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(read_build_id).clone()
}

#[cfg(target_os = "linux")]
fn read_build_id() -> String {
    use object::Object;
    let Ok(file) = std::fs::File::open("/proc/self/exe") else {
        return String::new();
    };
    let cache = object::ReadCache::new(file);
    let Ok(obj) = object::File::parse(&cache) else {
        return String::new();
    };
    obj.build_id()
        .ok()
        .flatten()
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn read_build_id() -> String {
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_attributes_are_split_and_decoded() {
        let attrs = "service.name=checkout%20api, service.version=42,host.name=web-7";
        assert_eq!(
            resource_attribute(attrs, "service.name").as_deref(),
            Some("checkout api")
        );
        assert_eq!(
            resource_attribute(attrs, "service.version").as_deref(),
            Some("42")
        );
        assert_eq!(
            resource_attribute(attrs, "host.name").as_deref(),
            Some("web-7")
        );
        assert_eq!(resource_attribute(attrs, "host"), None);
        assert_eq!(resource_attribute("", "host.name"), None);
    }

    #[test]
    fn the_process_start_comes_from_proc() {
        // A command name with a space and a parenthesis; starttime 12345 ticks.
        let stat = "77 (my (odd) prog) S 1 77 77 0 -1 4194560 100 0 0 0 3 1 0 0 20 0 1 0 \
                    12345 1000 100 18446744073709551615";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        assert_eq!(
            start_from_proc(stat, boot),
            Some(1_700_000_000_000_000_000 + 123_450_000_000)
        );
        assert_eq!(start_from_proc(stat, "cpu 1 2 3\n"), None);
        assert_eq!(start_from_proc("77 (x) S", boot), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_start_before_now_and_a_build_id() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let start = process_start_unix_ns();
        // Started before now and within the last day (the test binary was just run).
        // `/proc` counts in whole seconds (boot) and hundredths (start): allow a second.
        let now = now + 1_000_000_000;
        assert!(
            start <= now && now - start < 86_400_000_000_000,
            "{start} vs {now}"
        );
        let id = build_id();
        assert!(
            id.len() >= 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id:?}"
        );
    }
}
