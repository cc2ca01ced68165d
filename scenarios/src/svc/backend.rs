//! A downstream service on loopback (an auth service, an inventory service, a dictionary
//! service): a line protocol, one request line and one reply line per exchange, answered
//! after a latency drawn from a range that can change while it runs. It runs on its own
//! thread and runtime, without fdr: it is another service, not the one diagnosed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::{BoxError, Rng};

/// A running downstream service.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    knobs: Arc<Knobs>,
}

#[derive(Debug)]
struct Knobs {
    min_us: AtomicU64,
    max_us: AtomicU64,
    /// Replies `ERR busy` to this many requests in a thousand.
    errors_per_mille: AtomicU64,
}

impl Backend {
    /// Starts a service named `name` that answers in `min..=max`.
    pub(crate) fn start(name: &str, min: Duration, max: Duration) -> Result<Backend, BoxError> {
        let knobs = Arc::new(Knobs {
            min_us: AtomicU64::new(min.as_micros() as u64),
            max_us: AtomicU64::new(max.as_micros() as u64),
            errors_per_mille: AtomicU64::new(0),
        });
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let k = knobs.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return eprintln!("backend runtime: {e}"),
                };
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => return eprintln!("backend listener: {e}"),
                    };
                    let mut seed = 1;
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        seed += 1;
                        tokio::spawn(connection(stream, k.clone(), Rng::new(seed)));
                    }
                });
            })?;
        Ok(Backend { addr, knobs })
    }

    /// From now on, answers in `min..=max`.
    pub(crate) fn set_latency(&self, min: Duration, max: Duration) {
        self.knobs
            .min_us
            .store(min.as_micros() as u64, Ordering::Relaxed);
        self.knobs
            .max_us
            .store(max.as_micros() as u64, Ordering::Relaxed);
    }

    /// From now on, fails this many requests in a thousand.
    pub(crate) fn set_errors_per_mille(&self, n: u64) {
        self.knobs.errors_per_mille.store(n, Ordering::Relaxed);
    }
}

async fn connection(stream: TcpStream, knobs: Arc<Knobs>, mut rng: Rng) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        match rd.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let us = rng.between(
            knobs.min_us.load(Ordering::Relaxed),
            knobs.max_us.load(Ordering::Relaxed),
        );
        tokio::time::sleep(Duration::from_micros(us)).await;
        let reply = if rng.next_u64() % 1000 < knobs.errors_per_mille.load(Ordering::Relaxed) {
            "ERR busy\n".to_string()
        } else {
            format!("OK {}\n", line.trim_end().len())
        };
        if wr.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One exchange with a backend from async code: connect, send `request`, read the reply
/// line (without its newline).
pub(crate) async fn call(addr: SocketAddr, request: &str) -> std::io::Result<String> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    wr.write_all(format!("{request}\n").as_bytes()).await?;
    let mut reply = String::new();
    BufReader::new(rd).read_line(&mut reply).await?;
    Ok(reply.trim_end().to_string())
}
