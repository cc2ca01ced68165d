//! A load generator for the axum service, on loopback only.
//!
//! ```text
//! load [--url http://127.0.0.1:3000] [--seconds 30] [--clients 8] [--ids 4096] [--think-us 1000]
//! ```
//!
//! `--clients` threads, each on one kept-alive connection, send `GET /user/{id}` for ids
//! spread over `--ids` (about a quarter more than the service's cache holds, so some miss),
//! each request with its own W3C `traceparent`, pausing `--think-us` between two. Prints
//! the requests, latency p50/p99/max and errors of every second, then of the whole run.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: load [--url http://127.0.0.1:3000] [--seconds N] [--clients N] [--ids N] [--think-us N]";

/// How long a client waits on a connection before it gives up on a request.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response head or body read.
const MAX_RESPONSE_BYTES: usize = 64 << 10;
/// Results in flight from the clients to the printer.
const QUEUE: usize = 1 << 16;
/// Latencies kept for the whole run's percentiles (later requests are counted, not kept).
const MAX_SAMPLES: usize = 1 << 21;

struct Args {
    addr: SocketAddr,
    host: String,
    seconds: u64,
    clients: usize,
    ids: u64,
    think: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut url = "http://127.0.0.1:3000".to_string();
    let (mut seconds, mut clients, mut ids, mut think_us) = (30u64, 8usize, 4096u64, 1000u64);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))
        };
        let number = |v: String, max: u64| match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("{flag} {v:?}: expected a number from 1 to {max}")),
        };
        match flag.as_str() {
            "--url" => url = value()?,
            "--seconds" => seconds = number(value()?, 3600)?,
            "--clients" => clients = number(value()?, 256)? as usize,
            "--ids" => ids = number(value()?, 1 << 40)?,
            "--think-us" => think_us = number(value()?, 1_000_000)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`; {USAGE}")),
        }
    }
    let host = url
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.contains('/'))
        .ok_or_else(|| format!("--url {url:?}: expected http://HOST:PORT"))?
        .to_string();
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("--url {url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url:?}: no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--url {url:?} is {addr}: this load generator only targets loopback (127.0.0.0/8, ::1)"
        ));
    }
    Ok(Args {
        addr,
        host,
        seconds,
        clients,
        ids,
        think: Duration::from_micros(think_us),
    })
}

/// One request's outcome: the second of the run it ended in, its latency, whether it got a 200.
struct Outcome {
    second: u64,
    latency: Duration,
    ok: bool,
}

/// xorshift64*: ids and trace ids, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One kept-alive connection.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one GET and reads its answer; the status code.
    fn get(&mut self, host: &str, path: &str, traceparent: &str) -> std::io::Result<u16> {
        write!(
            self.writer,
            "GET {path} HTTP/1.1\r\nhost: {host}\r\ntraceparent: {traceparent}\r\n\r\n"
        )?;
        let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let mut line = String::new();
        let (mut status, mut length, mut head_bytes) = (0u16, 0usize, 0usize);
        loop {
            line.clear();
            let n = self
                .reader
                .by_ref()
                .take((MAX_RESPONSE_BYTES - head_bytes) as u64)
                .read_line(&mut line)?;
            if n == 0 {
                return Err(bad(
                    "the connection closed before the response's head ended".into(),
                ));
            }
            head_bytes += n;
            let l = line.trim_end();
            if status == 0 {
                status = l
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(format!("not an HTTP status line: {l:?}")))?;
            } else if l.is_empty() {
                break;
            } else if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("bad content-length: {l:?}")))?;
            }
        }
        if length > MAX_RESPONSE_BYTES {
            return Err(bad(format!("a {length}-byte body")));
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(status)
    }
}

/// One client: requests until `deadline`, reconnecting after an error.
fn client(
    args: &Args,
    seed: u64,
    start: Instant,
    deadline: Instant,
    out: &mpsc::SyncSender<Outcome>,
) {
    let mut rng = Rng(seed | 1);
    let mut conn = None;
    while Instant::now() < deadline {
        let t = Instant::now();
        let ok = match conn.take().map_or_else(|| Connection::open(args.addr), Ok) {
            Ok(mut c) => {
                let id = rng.next() % args.ids;
                let traceparent = format!(
                    "00-{:016x}{:016x}-{:016x}-01",
                    rng.next(),
                    rng.next(),
                    rng.next()
                );
                match c.get(&args.host, &format!("/user/{id}"), &traceparent) {
                    Ok(status) => {
                        conn = Some(c);
                        status == 200
                    }
                    Err(_) => false,
                }
            }
            Err(_) => false,
        };
        let outcome = Outcome {
            second: start.elapsed().as_secs(),
            latency: t.elapsed(),
            ok,
        };
        if out.send(outcome).is_err() {
            return;
        }
        // After an error, pause longer: a refused connection fails at once.
        std::thread::sleep(if ok {
            args.think
        } else {
            args.think.max(Duration::from_millis(100))
        });
    }
}

/// Latencies of a span of the run.
#[derive(Default)]
struct Summary {
    latencies: Vec<Duration>,
    /// Successful requests past [`MAX_SAMPLES`], counted only.
    unkept: usize,
    errors: u64,
}

impl Summary {
    fn add(&mut self, o: &Outcome) {
        if !o.ok {
            self.errors += 1;
        } else if self.latencies.len() < MAX_SAMPLES {
            self.latencies.push(o.latency);
        } else {
            self.unkept += 1;
        }
    }

    fn line(&mut self, seconds: f64) -> String {
        self.latencies.sort_unstable();
        let kept = self.latencies.len();
        let n = kept + self.unkept;
        let q = |p: f64| {
            self.latencies
                .get(((kept as f64 * p) as usize).min(kept.saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        format!(
            "{n:>7} ok ({:.0}/s), p50 {:.2?}, p99 {:.2?}, max {:.2?}, {} errors",
            n as f64 / seconds,
            q(0.50),
            q(0.99),
            self.latencies.last().copied().unwrap_or_default(),
            self.errors
        )
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "load: {} clients on http://{} for {} s, ids 0..{}",
        args.clients, args.host, args.seconds, args.ids
    );
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let mut whole = Summary::default();
    let mut errors_total = 0;
    std::thread::scope(|s| {
        for c in 0..args.clients {
            let tx = tx.clone();
            let args = &args;
            s.spawn(move || {
                client(
                    args,
                    seed.wrapping_add(c as u64 * 0x9e37_79b9),
                    start,
                    deadline,
                    &tx,
                )
            });
        }
        drop(tx);
        let mut second = Summary::default();
        let mut current = 0;
        for o in rx {
            if o.second != current {
                println!("load: second {:>3} {}", current + 1, second.line(1.0));
                second = Summary::default();
                current = o.second;
            }
            second.add(&o);
            whole.add(&o);
        }
        errors_total = whole.errors;
    });
    println!(
        "load: all {} {}",
        format_args!("{:.1} s", start.elapsed().as_secs_f64()),
        whole.line(start.elapsed().as_secs_f64())
    );
    if whole.latencies.is_empty() {
        eprintln!("load: no request succeeded ({errors_total} errors): is the service up?");
        std::process::exit(1);
    }
}
