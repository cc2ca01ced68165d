//! A payments API on tokio whose ledger is owned by one thread: the ledger (balances and an
//! append-only journal with a running checksum) is not shareable, so every write is sent to
//! the ledger thread over a channel and the handler awaits its answer. Reads are served from
//! a snapshot the ledger publishes.
//!
//! The fault: a bulk import shifts the traffic from reads to transfers. Every transfer
//! funnels through the single ledger thread, which is busy all the time while the async
//! workers wait on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// What applying one transfer costs the ledger thread on this host (validation, the
/// journal's checksum); the journal's record size is chosen to match.
const APPLY_COST: Duration = Duration::from_millis(2);
/// Transfers waiting for the ledger (a bound: senders wait when it is full).
const LEDGER_QUEUE: usize = 1024;

struct Transfer {
    from: u64,
    to: u64,
    cents: u64,
    done: oneshot::Sender<Result<Receipt, &'static str>>,
}

struct Api {
    ledger: std_mpsc::SyncSender<Transfer>,
    balances: Arc<RwLock<HashMap<u64, i64>>>,
}

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let record_bytes = crate::svc::size_for(APPLY_COST, 256, |n| {
        let mut journal = Journal::new(n);
        move || {
            std::hint::black_box(journal.append(1, 2, 3).checksum);
        }
    });
    println!("serial_worker: journal records of {record_bytes} bytes");
    let balances = Arc::new(RwLock::new((0..1000).map(|a| (a, 1_000_000)).collect()));
    let (tx, rx) = std_mpsc::sync_channel(LEDGER_QUEUE);
    let snapshot = balances.clone();
    std::thread::Builder::new()
        .name("ledger".into())
        .spawn(move || ledger_thread(rx, snapshot, record_bytes))?; // FAULT: serial-worker
    let api = Arc::new(Api {
        ledger: tx,
        balances,
    });
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let a = api.clone();
    rt.spawn(http::serve(listener, "http /accounts", move |req| {
        handle(a.clone(), req)
    }));
    let spec = Spec {
        clients: 12,
        think: Duration::from_millis(1),
    };
    let import = Arc::new(AtomicBool::new(false));
    let importing = import.clone();
    let (report, bytes) = crate::svc::incident(
        ctx,
        || import.store(true, Ordering::Relaxed),
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(move |c, n| {
                    let account = (c as u64 * 61 + n) % 1000;
                    // Before the import, one request in twenty is a transfer; during it, all.
                    if importing.load(Ordering::Relaxed) || n % 20 == 0 {
                        Request::post(format!(
                            "http://payments/accounts/transfer?from={account}&to={}&cents=100",
                            (account + 1) % 1000
                        ))
                    } else {
                        Request::get(format!(
                            "http://payments/accounts/balance?account={account}"
                        ))
                    }
                    .body(Full::new(Bytes::new()))
                    .expect("a valid request")
                }),
            )
        },
    )?;
    crate::svc::finish(ctx, "serial_worker", &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn handle(api: Arc<Api>, req: Request<Incoming>) -> Response<Body> {
    let num = |k: &str| http::query(&req, k).and_then(|v| v.parse::<u64>().ok());
    if req.method() == Method::GET {
        let account = num("account").unwrap_or(0);
        let balance = api
            .balances
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&account)
            .copied();
        return match balance {
            Some(b) => http::ok(format!("{{\"account\":{account},\"balance\":{b}}}")),
            None => http::error(StatusCode::NOT_FOUND, "no such account"),
        };
    }
    let (Some(from), Some(to), Some(cents)) = (num("from"), num("to"), num("cents")) else {
        return http::error(StatusCode::BAD_REQUEST, "from, to and cents are required");
    };
    let (done, answer) = oneshot::channel();
    let transfer = Transfer {
        from,
        to,
        cents,
        done,
    };
    // The queue is bounded and the ledger drains it; a full queue is answered at once.
    if api.ledger.try_send(transfer).is_err() {
        return http::error(StatusCode::SERVICE_UNAVAILABLE, "ledger busy");
    }
    match answer.await {
        Ok(Ok(receipt)) => {
            let seq = receipt.seq;
            fdr::log!(
                "http",
                "transfer {from} -> {to}: {cents} cents, entry {seq}"
            );
            http::ok(format!(
                "{{\"entry\":{seq},\"receipt\":\"{:016x}\"}}",
                receipt.checksum
            ))
        }
        Ok(Err(reason)) => http::error(StatusCode::CONFLICT, reason),
        Err(_) => http::error(StatusCode::SERVICE_UNAVAILABLE, "ledger gone"),
    }
}

/// The ledger's thread: applies transfers one at a time, in order.
fn ledger_thread(
    rx: std_mpsc::Receiver<Transfer>,
    snapshot: Arc<RwLock<HashMap<u64, i64>>>,
    record_bytes: usize,
) {
    let mut journal = Journal::new(record_bytes);
    let mut balances: HashMap<u64, i64> =
        snapshot.read().unwrap_or_else(|p| p.into_inner()).clone();
    while let Ok(t) = rx.recv() {
        let _task = fdr::task("ledger apply");
        let result = fdr::with_region("apply", || {
            let amount = t.cents as i64;
            if balances.get(&t.from).copied().unwrap_or(0) < amount {
                return Err("insufficient funds");
            }
            *balances.entry(t.from).or_default() -= amount;
            *balances.entry(t.to).or_default() += amount;
            Ok(journal.append(t.from, t.to, t.cents))
        });
        if result.is_ok() {
            let mut snap = snapshot.write().unwrap_or_else(|p| p.into_inner());
            for a in [t.from, t.to] {
                snap.insert(a, balances[&a]);
            }
        }
        let _ = t.done.send(result);
    }
}

/// A journal entry's number and chained checksum: the transfer's receipt.
struct Receipt {
    seq: u64,
    checksum: u64,
}

/// The append-only journal: fixed-size records, each chained to the previous one by a
/// checksum over the record.
struct Journal {
    record: Vec<u8>,
    chain: u64,
    seq: u64,
}

impl Journal {
    fn new(record_bytes: usize) -> Self {
        Journal {
            record: vec![0; record_bytes.max(32)],
            chain: 0xcbf2_9ce4_8422_2325,
            seq: 0,
        }
    }

    fn append(&mut self, from: u64, to: u64, cents: u64) -> Receipt {
        self.seq += 1;
        let header = [self.seq, from, to, cents];
        for (i, v) in header.iter().enumerate() {
            self.record[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let mut h = self.chain;
        for b in &self.record {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.chain = h;
        Receipt {
            seq: self.seq,
            checksum: h,
        }
    }
}
