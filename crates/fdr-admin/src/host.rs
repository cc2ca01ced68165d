//! The `Host` check of an endpoint without credentials, against DNS rebinding: a web page
//! whose own name an attacker rebinds to 127.0.0.1 can make a browser send requests to the
//! loopback listener, but they carry the attacker's name in `Host`. Only loopback names and
//! the configured ones are answered.

use std::net::IpAddr;

use hyper::Request;
use hyper::header::HOST;

use crate::{ConfigError, Error};

/// The names an endpoint without credentials answers to, besides the loopback ones.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    /// Normalized: lowercase, without a trailing dot or brackets.
    allowed: Vec<String>,
}

impl Hosts {
    /// Checks and normalizes the configured names.
    pub(crate) fn new(names: &[String]) -> Result<Hosts, Error> {
        let mut allowed = Vec::with_capacity(names.len());
        for name in names {
            let n = normalize(name);
            let shape_ok = !n.is_empty()
                && n.len() <= 253
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
            // A colon belongs to an IPv6 address only, never to a port.
            let port_free = !n.contains(':') || n.parse::<IpAddr>().is_ok();
            if !shape_ok || !port_free {
                return Err(Error::Config(ConfigError::AllowedHost {
                    host: name.clone(),
                }));
            }
            allowed.push(n);
        }
        Ok(Hosts { allowed })
    }

    /// `Ok` when every host the request names (its `Host`, and the authority of an absolute
    /// URI) is a loopback name or a configured one; otherwise the one-line reason.
    pub(crate) fn check<B>(&self, req: &Request<B>) -> Result<(), String> {
        let mut values = req.headers().get_all(HOST).iter();
        // A request without a Host header (HTTP/1.0, a low-level client) cannot come from
        // a rebound name: browsers always send one. Its URI is still checked below.
        let host = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(_), Some(_)) => return Err(refusal("more than one Host header")),
            (Some(v), None) => Some(
                v.to_str()
                    .map_err(|_| refusal("a Host header that is not ASCII"))?,
            ),
        };
        if let Some(host) = host {
            self.allows(host)
                .then_some(())
                .ok_or_else(|| refusal(&format!("Host \"{}\"", crate::routes::shown(host))))?;
        }
        if let Some(authority) = req.uri().authority()
            && !self.allows(authority.as_str())
        {
            return Err(refusal(&format!(
                "the request's URI names \"{}\"",
                crate::routes::shown(authority.as_str())
            )));
        }
        Ok(())
    }

    /// Whether `value` (a `Host` header, `name[:port]`) names this endpoint.
    fn allows(&self, value: &str) -> bool {
        let Some(name) = name_of(value) else {
            return false;
        };
        let name = normalize(name);
        name == "localhost"
            || name
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
            || self.allowed.contains(&name)
    }
}

fn refusal(what: &str) -> String {
    format!(
        "misdirected request: {what}; this endpoint has no credentials, so it answers only to localhost, loopback addresses and AdminBuilder::allowed_hosts (against DNS rebinding)"
    )
}

/// The name in `name[:port]` or `[v6][:port]`; `None` if the value is malformed.
fn name_of(value: &str) -> Option<&str> {
    let port_ok = |p: &str| p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    let (name, port) = if let Some(rest) = value.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        match after {
            "" => (v6, ""),
            _ => (v6, after.strip_prefix(':')?),
        }
    } else {
        match value.rsplit_once(':') {
            // A bare IPv6 address is not a valid Host.
            Some((n, _)) if n.contains(':') => return None,
            Some((n, p)) => (n, p),
            None => (value, ""),
        }
    };
    (!name.is_empty() && port_ok(port) && !name.contains(['@', '/', ' '])).then_some(name)
}

/// Lowercase, without a trailing dot (`localhost.` is `localhost`) or IPv6 brackets.
fn normalize(name: &str) -> String {
    let n = name.trim();
    let n = n
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(n);
    n.strip_suffix('.').unwrap_or(n).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<&str>, uri: &str) -> Request<()> {
        let mut b = Request::get(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn loopback_names_and_configured_ones_pass_with_any_port() {
        let hosts =
            Hosts::new(&["fdr.internal".into(), "[fd00::1]".into(), "10.0.0.7".into()]).unwrap();
        for ok in [
            "localhost",
            "LocalHost:6060",
            "localhost.",
            "localhost:",
            "127.0.0.1",
            "127.0.0.1:80",
            "127.9.9.9:1",
            "[::1]",
            "[::1]:6060",
            "[::ffff:127.0.0.1]:6060",
            "fdr.internal",
            "FDR.INTERNAL.:443",
            "[fd00::1]:6060",
            "10.0.0.7:6060",
        ] {
            assert!(hosts.check(&req(Some(ok), "/")).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:6060",
            "localhost.evil.example",
            "localhost:6060.evil",
            "127.0.0.1.nip.io",
            "user@localhost",
            "::1",
            "[::1",
            "[::1]x",
            "[::2]:6060",
            "10.0.0.8",
            "fdr.internal.evil",
            "localhost:99999999",
            "",
            ":6060",
        ] {
            let e = hosts.check(&req(Some(bad), "/")).unwrap_err();
            assert!(e.starts_with("misdirected request"), "{bad}: {e}");
            assert!(!e.contains('\n'), "{bad}: one line");
        }
    }

    #[test]
    fn a_doubled_host_and_a_foreign_absolute_uri_are_refused_a_missing_host_is_not() {
        let hosts = Hosts::default();
        assert!(hosts.check(&req(None, "/")).is_ok());
        assert!(
            hosts
                .check(&req(None, "http://evil.example/debug/fdr/"))
                .unwrap_err()
                .contains("evil.example")
        );
        let mut two = req(Some("localhost"), "/");
        two.headers_mut().append(HOST, "localhost".parse().unwrap());
        assert!(hosts.check(&two).unwrap_err().contains("more than one"));
        assert!(
            hosts
                .check(&req(Some("localhost"), "http://evil.example/debug/fdr/"))
                .unwrap_err()
                .contains("evil.example")
        );
        assert!(
            hosts
                .check(&req(Some("localhost"), "http://127.0.0.1:6060/debug/fdr/"))
                .is_ok()
        );
    }

    #[test]
    fn configured_names_are_checked_at_start() {
        for bad in [
            "",
            "fdr.internal:8080",
            "http://fdr.internal",
            "fdr internal",
            "a/b",
        ] {
            let e = Hosts::new(&[bad.into()]).err();
            assert!(
                matches!(&e, Some(Error::Config(ConfigError::AllowedHost { host })) if host == bad),
                "{bad:?}: {e:?}"
            );
        }
        assert!(Hosts::new(&["Fdr-Admin.example.".into(), "::1".into()]).is_ok());
    }
}
