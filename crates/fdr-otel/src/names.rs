//! Task names for HTTP requests: `http METHOD ROUTE` (inbound) and `http client METHOD ROUTE`
//! (outbound), from a bounded table.
//!
//! A task's name must be a `&'static str` (the recorder interns names by address, once per
//! thread), and routes are run-time strings. A name is therefore made once, leaked, and kept
//! in a table that maps (side, method, route) to it; the table holds at most
//! [`MAX_TASK_NAMES`] names, and each route is cut to [`MAX_ROUTE_LEN`] bytes. Once the table
//! is full, a request whose name is not in it is named `http METHOD <overflow>`, so a service
//! whose route function returns raw paths (`/user/17`, `/user/18`, ...) costs at most a fixed
//! amount of memory and a fixed number of trace-table strings, never one per request. An
//! empty route names the method alone (`http GET`, outside the table). Methods outside the
//! nine standard ones are named `_OTHER`, as OpenTelemetry's HTTP conventions do.

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};

use http::Method;

/// Most distinct task names this crate makes (inbound and outbound together); later new
/// names become `http METHOD <overflow>`.
pub const MAX_TASK_NAMES: usize = 1024;
/// Longest route kept in a task name, in bytes; a longer one is cut at a character
/// boundary and ends with `…`.
pub const MAX_ROUTE_LEN: usize = 128;

/// The standard methods, then the name of all others.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];
const SERVER_METHOD_ONLY: [&str; 10] = [
    "http GET",
    "http HEAD",
    "http POST",
    "http PUT",
    "http DELETE",
    "http CONNECT",
    "http OPTIONS",
    "http TRACE",
    "http PATCH",
    "http _OTHER",
];
const CLIENT_METHOD_ONLY: [&str; 10] = [
    "http client GET",
    "http client HEAD",
    "http client POST",
    "http client PUT",
    "http client DELETE",
    "http client CONNECT",
    "http client OPTIONS",
    "http client TRACE",
    "http client PATCH",
    "http client _OTHER",
];
const SERVER_OVERFLOW: [&str; 10] = [
    "http GET <overflow>",
    "http HEAD <overflow>",
    "http POST <overflow>",
    "http PUT <overflow>",
    "http DELETE <overflow>",
    "http CONNECT <overflow>",
    "http OPTIONS <overflow>",
    "http TRACE <overflow>",
    "http PATCH <overflow>",
    "http _OTHER <overflow>",
];
const CLIENT_OVERFLOW: [&str; 10] = [
    "http client GET <overflow>",
    "http client HEAD <overflow>",
    "http client POST <overflow>",
    "http client PUT <overflow>",
    "http client DELETE <overflow>",
    "http client CONNECT <overflow>",
    "http client OPTIONS <overflow>",
    "http client TRACE <overflow>",
    "http client PATCH <overflow>",
    "http client _OTHER <overflow>",
];

/// Which way a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// A request this service serves: `http METHOD ROUTE`.
    Server,
    /// A request this service sends: `http client METHOD ROUTE`.
    Client,
}

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::CONNECT => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::PATCH => 8,
        _ => 9,
    }
}

/// `route` cut to [`MAX_ROUTE_LEN`] bytes at a character boundary (`None`: it fits).
fn cut(route: &str) -> Option<String> {
    if route.len() <= MAX_ROUTE_LEN {
        return None;
    }
    let mut n = MAX_ROUTE_LEN;
    while !route.is_char_boundary(n) {
        n -= 1;
    }
    Some(format!("{}…", &route[..n]))
}

#[derive(Debug, Default)]
struct Table {
    /// Per side and method: route -> leaked name.
    by_route: [[HashMap<Box<str>, &'static str>; 10]; 2],
    len: usize,
}

/// A bounded table of task names.
#[derive(Debug)]
pub(crate) struct NameTable {
    table: RwLock<Table>,
    max: usize,
}

static NAMES: LazyLock<NameTable> = LazyLock::new(|| NameTable::new(MAX_TASK_NAMES));

/// The task name for a request, from the process's table (see [`NameTable::get`]).
pub(crate) fn task_name(side: Side, method: &Method, route: &str) -> &'static str {
    NAMES.get(side, method, route)
}

impl NameTable {
    pub(crate) fn new(max: usize) -> Self {
        NameTable {
            table: RwLock::default(),
            max,
        }
    }

    /// The task name for a request: from the table, added to it if there is room, else
    /// the method's overflow name. An empty route names the method only (`http GET`),
    /// outside the table.
    pub(crate) fn get(&self, side: Side, method: &Method, route: &str) -> &'static str {
        let m = method_index(method);
        let s = side as usize;
        if route.is_empty() {
            return match side {
                Side::Server => SERVER_METHOD_ONLY[m],
                Side::Client => CLIENT_METHOD_ONLY[m],
            };
        }
        let cut = cut(route);
        let route = cut.as_deref().unwrap_or(route);
        let overflow = match side {
            Side::Server => SERVER_OVERFLOW[m],
            Side::Client => CLIENT_OVERFLOW[m],
        };
        {
            let t = self.table.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(&name) = t.by_route[s][m].get(route) {
                return name;
            }
            if t.len >= self.max {
                return overflow;
            }
        }
        let mut t = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&name) = t.by_route[s][m].get(route) {
            return name;
        }
        if t.len >= self.max {
            return overflow;
        }
        let prefix = match side {
            Side::Server => "http",
            Side::Client => "http client",
        };
        // Leaked on purpose, and bounded: at most `max` names of at most
        // MAX_ROUTE_LEN + 30 bytes live for the process's lifetime.
        let name: &'static str =
            Box::leak(format!("{prefix} {} {route}", METHODS[m]).into_boxed_str());
        t.by_route[s][m].insert(route.into(), name);
        t.len += 1;
        name
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.read().unwrap().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_once_and_reused() {
        let a = task_name(Side::Server, &Method::GET, "/names/a");
        assert_eq!(a, "http GET /names/a");
        let b = task_name(Side::Server, &Method::GET, "/names/a");
        assert!(std::ptr::eq(a, b), "the same leaked name");
        assert_eq!(
            task_name(Side::Client, &Method::POST, "127.0.0.1:80"),
            "http client POST 127.0.0.1:80"
        );
        let odd = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(
            task_name(Side::Server, &odd, "/names/a"),
            "http _OTHER /names/a"
        );
    }

    #[test]
    fn long_routes_are_cut_at_a_char_boundary() {
        let long = format!("/{}", "é".repeat(100));
        let name = task_name(Side::Server, &Method::PUT, &long);
        let route = name.strip_prefix("http PUT ").unwrap();
        assert!(route.ends_with('…'));
        assert!(route.len() <= MAX_ROUTE_LEN + '…'.len_utf8());
        assert!(long.starts_with(route.trim_end_matches('…')));
        // Routes sharing the kept prefix share the name.
        let longer = format!("{long}/more");
        assert!(std::ptr::eq(
            name,
            task_name(Side::Server, &Method::PUT, &longer)
        ));
    }

    #[test]
    fn the_table_is_bounded_and_overflows_to_a_static_name_per_method() {
        let t = NameTable::new(16);
        for i in 0..26 {
            t.get(Side::Server, &Method::DELETE, &format!("/bound/{i}"));
        }
        assert_eq!(t.len(), 16);
        assert_eq!(
            t.get(Side::Server, &Method::DELETE, "/bound/new"),
            "http DELETE <overflow>"
        );
        assert_eq!(
            t.get(Side::Client, &Method::PATCH, "new-host:1"),
            "http client PATCH <overflow>"
        );
        // Names made before the table filled still resolve, and nothing grew.
        assert_eq!(
            t.get(Side::Server, &Method::DELETE, "/bound/0"),
            "http DELETE /bound/0"
        );
        assert_eq!(t.len(), 16);
        // The method alone needs no room in the table.
        assert_eq!(t.get(Side::Server, &Method::DELETE, ""), "http DELETE");
        assert_eq!(t.get(Side::Client, &Method::GET, ""), "http client GET");
        assert_eq!(t.len(), 16);
    }
}
