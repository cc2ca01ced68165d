//! A small HTTP/1 client over loopback and a Prometheus text checker, shared by the admin
//! endpoint's integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a test helper module")]

pub mod hostile;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// No request in these tests may take longer than this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A whole response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After` as whole seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.header("retry-after")?.parse().ok()
    }
}

/// Sends one request on a new connection; returns the response head with its streaming body
/// and the connection's task (abort it to drop the connection).
pub async fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<(Response<Incoming>, JoinHandle<()>)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .map_err(io::Error::other)?;
    Ok((resp, conn))
}

/// Sends a request and reads the whole response, within [`REQUEST_TIMEOUT`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Resp> {
    let work = async {
        let (resp, _conn) = open(addr, method, path, headers).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
        Ok(Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.to_vec(),
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{path}: hung")))?
}

/// `GET path` with `headers`, panicking on a transport error.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", path, headers)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A sample of the text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition: families' types and every sample.
#[derive(Debug, Default)]
pub struct Exposition {
    pub types: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.value)
    }
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `{k="v",...}` from the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected `{`")?;
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after) = rest.split_once("=\"").ok_or("expected `key=\"`")?;
        if !valid_name(key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        rest = &after[end + 1..];
    }
}

/// Parses Prometheus text format 0.0.4 strictly: every line is a `# HELP`, a `# TYPE`
/// (before the family's samples, once), another comment, or `name{labels} value`; every
/// sample belongs to a declared family; histograms have ascending `le` buckets with
/// non-decreasing counts, a `+Inf` bucket equal to `_count`, and a `_sum`.
pub fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let mut seen_samples_of: HashMap<String, bool> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let err = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let mut words = c.trim_start().splitn(3, ' ');
            match words.next() {
                Some("TYPE") => {
                    let name = words
                        .next()
                        .ok_or_else(|| err("TYPE without a name".into()))?;
                    let kind = words
                        .next()
                        .ok_or_else(|| err("TYPE without a type".into()))?;
                    if !valid_name(name) {
                        return Err(err(format!("bad metric name {name:?}")));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(err(format!("unknown type {kind:?}")));
                    }
                    if e.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(err(format!("family {name} declared twice")));
                    }
                    if seen_samples_of.contains_key(name) {
                        return Err(err(format!("TYPE of {name} after its samples")));
                    }
                }
                Some("HELP") => {
                    let name = words
                        .next()
                        .ok_or_else(|| err("HELP without a name".into()))?;
                    if !valid_name(name) {
                        return Err(err(format!("bad metric name {name:?}")));
                    }
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut parts = rest.trim_start().split(' ');
        let value = parts
            .next()
            .and_then(parse_value)
            .ok_or_else(|| err("bad value".into()))?;
        if let Some(ts) = parts.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
        }
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|f| e.types.contains_key(*f))
            .unwrap_or(name);
        if !e.types.contains_key(family) {
            return Err(err(format!("sample of undeclared family {family}")));
        }
        seen_samples_of.insert(family.to_owned(), true);
        e.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&e)?;
    Ok(e)
}

/// A series' labels, `le` aside.
type Labels = Vec<(String, String)>;

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (family, kind) in &e.types {
        if kind != "histogram" {
            continue;
        }
        // Series by their labels without `le`.
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in e
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let le = s
                .labels
                .get("le")
                .and_then(|v| parse_value(v))
                .ok_or_else(|| format!("{family}: bucket without a numeric le"))?;
            let key = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            series.entry(key).or_default().push((le, s.value));
        }
        if series.is_empty() {
            return Err(format!("histogram {family} has no buckets"));
        }
        for (key, buckets) in series {
            let labels: Vec<(&str, &str)> =
                key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if !buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
            {
                return Err(format!(
                    "{family}{key:?}: buckets not ascending: {buckets:?}"
                ));
            }
            let (last_le, last) = *buckets.last().expect("non-empty");
            if last_le != f64::INFINITY {
                return Err(format!("{family}{key:?}: no +Inf bucket"));
            }
            let count = e
                .value(&format!("{family}_count"), &labels)
                .ok_or_else(|| format!("{family}{key:?}: no _count"))?;
            if count != last {
                return Err(format!("{family}{key:?}: +Inf {last} != _count {count}"));
            }
            e.value(&format!("{family}_sum"), &labels)
                .ok_or_else(|| format!("{family}{key:?}: no _sum"))?;
        }
    }
    Ok(())
}

/// The `VmRSS` of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[test]
fn the_exposition_checker_catches_bad_text() {
    let good = "# HELP a_seconds x\n# TYPE a_seconds histogram\na_seconds_bucket{le=\"0.1\"} 1\na_seconds_bucket{le=\"+Inf\"} 2\na_seconds_sum 0.3\na_seconds_count 2\n# TYPE c_total counter\nc_total{k=\"v\\\"\"} 3\n";
    let e = parse_exposition(good).unwrap();
    assert_eq!(e.value("c_total", &[("k", "v\"")]), Some(3.0));
    for bad in [
        "x 1\n",
        "# TYPE x gauge\nx one\n",
        "# TYPE x gauge\nx{k=\"v} 1\n",
        "# TYPE x gauge\nx 1\n# TYPE x gauge\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# TYPE 1x gauge\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

/// Starts (or restarts) the recorder as these tests use it: a small flight recorder (an
/// 8 MiB ring, one second of history).
pub fn start_recorder() {
    fdr_recorder::start(fdr_recorder::Config {
        flight: Some(fdr_recorder::FlightConfig {
            min_age: std::time::Duration::from_secs(1),
            max_bytes: 8 << 20,
        }),
        ..Default::default()
    })
    .unwrap();
}
