//! An inventory server in the classic shape: std threads, one per connection, a line
//! protocol (`STOCK sku`, `RESERVE sku n`), each request an `fdr::task`, the inventory behind
//! an `fdr::sync::Mutex`.
//!
//! The fault: a change recomputes the "low stock" report after every reservation, sorting
//! the whole inventory while still holding the inventory lock. Every other connection's
//! thread waits on that lock.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// What recomputing the report costs on this host; the inventory's size is chosen to match.
const REPORT_COST: Duration = Duration::from_millis(2);
/// Connections served at once (a thread each); more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;

struct Inventory {
    stock: HashMap<u64, u32>,
    low_stock: Vec<(u32, u64)>,
}

struct Server {
    inventory: fdr::sync::Mutex<Inventory>,
    report_on_reserve: AtomicBool,
}

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let skus = crate::svc::size_for(REPORT_COST, 1024, |n| {
        let mut inv = inventory(n);
        move || {
            inv.recompute_report();
            std::hint::black_box(inv.low_stock.len());
        }
    });
    println!("thread_per_conn: {skus} SKUs");
    let server = Arc::new(Server {
        inventory: fdr::sync::Mutex::new(inventory(skus)),
        report_on_reserve: AtomicBool::new(false),
    });
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let s = server.clone();
    std::thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || accept(listener, s, skus as u64))?;
    let spec = Spec {
        clients: 8,
        think: Duration::from_micros(500),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        || server.report_on_reserve.store(true, Ordering::Relaxed),
        move |fault_at, end| {
            load::lines(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| {
                    let sku = (c as u64 * 7919 + n * 13) % 1000;
                    if n % 2 == 0 {
                        format!("STOCK {sku}")
                    } else {
                        format!("RESERVE {sku} 1")
                    }
                }),
            )
        },
    )?;
    crate::svc::finish(ctx, "thread_per_conn", &report, bytes)?;
    Ok(())
}

fn inventory(skus: usize) -> Inventory {
    let mut inv = Inventory {
        stock: (0..skus as u64)
            .map(|s| (s, 1_000_000 + (s * 7919 % 1000) as u32))
            .collect(),
        low_stock: Vec::new(),
    };
    inv.recompute_report();
    inv
}

impl Inventory {
    /// The 100 SKUs with the least stock.
    fn recompute_report(&mut self) {
        let mut all: Vec<(u32, u64)> = self.stock.iter().map(|(s, n)| (*n, *s)).collect();
        all.sort_unstable();
        all.truncate(100);
        self.low_stock = all;
    }
}

fn accept(listener: TcpListener, server: Arc<Server>, skus: u64) {
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        while live.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(1));
        }
        live.fetch_add(1, Ordering::AcqRel);
        let (server, live) = (server.clone(), live.clone());
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                connection(stream, &server, skus);
                live.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn connection(stream: TcpStream, server: &Server, skus: u64) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let reply = {
            let _task = fdr::task("rpc inventory");
            handle(server, line.trim_end(), skus)
        };
        if writer.write_all(format!("{reply}\n").as_bytes()).is_err() {
            return;
        }
    }
}

fn handle(server: &Server, line: &str, skus: u64) -> String {
    let mut words = line.split_whitespace();
    let (cmd, sku) = (
        words.next(),
        words.next().and_then(|s| s.parse::<u64>().ok()),
    );
    let Some(sku) = sku.filter(|s| *s < skus) else {
        return "ERR bad sku".into();
    };
    let mut inv = server.inventory.lock().unwrap_or_else(|p| p.into_inner()); // FAULT: inventory-lock
    match cmd {
        Some("STOCK") => format!("STOCK {sku} {}", inv.stock.get(&sku).copied().unwrap_or(0)),
        Some("RESERVE") => {
            let n: u32 = words.next().and_then(|s| s.parse().ok()).unwrap_or(1);
            let left = inv.stock.entry(sku).or_default();
            if *left < n {
                return "ERR out of stock".into();
            }
            *left -= n;
            let left = *left;
            if server.report_on_reserve.load(Ordering::Relaxed) {
                fdr::with_region("low stock report", || inv.recompute_report()); // FAULT: inventory-lock-held
            }
            fdr::log!("rpc", "RESERVE {sku} {n}: {left} left");
            format!("RESERVED {sku} {left}")
        }
        _ => "ERR unknown command".into(),
    }
}
