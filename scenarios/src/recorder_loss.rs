//! A catalogue import worker in a small container, whose flight recorder was given 1 MiB.
//! Partners connect and send batches of catalogue rows (`IMPORT`, the rows, `END`); each
//! connection has its thread, which parses the rows, applies them and logs each one with
//! `fdr::log!` (a debug line that was meant to be temporary), each batch an `fdr::task`.
//!
//! The fault: partners start a bulk import, thousands of rows per batch from several
//! connections at once. The row logs come faster than the recorder's small ring can take
//! them: writers find no free buffer and events are discarded, so the trace has holes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// The flight recorder's memory in this container.
const FLIGHT_BYTES: usize = 1 << 20;
/// Rows per batch from the usual partners, and in the bulk import.
const SMALL_BATCH_ROWS: usize = 5;
const IMPORT_BATCH_ROWS: usize = 4000;
/// Longest batch accepted, in rows (a bound; longer batches are refused).
const MAX_BATCH_ROWS: usize = 100_000;

/// The catalogue: price and stock per SKU.
#[derive(Default)]
struct Catalogue {
    items: Mutex<HashMap<String, (u64, u32)>>,
    imported: AtomicU64,
}

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(
        ctx,
        fdr::FlightConfig {
            max_bytes: FLIGHT_BYTES,
            ..fdr::FlightConfig::default()
        },
    )?;
    let catalogue = Arc::new(Catalogue::default());
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let c = catalogue.clone();
    std::thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || accept(listener, c))?;
    let spec = Spec {
        clients: 8,
        think: Duration::from_millis(2),
    };
    // Each partner's batches: a few rows before the bulk import, its file during it.
    let batches: Arc<Vec<(String, String)>> = Arc::new(
        (0..spec.clients)
            .map(|c| (batch(c, SMALL_BATCH_ROWS), batch(c, IMPORT_BATCH_ROWS)))
            .collect(),
    );
    let bulk = Arc::new(AtomicBool::new(false));
    let importing = bulk.clone();
    let (report, bytes) = crate::svc::incident(
        ctx,
        || bulk.store(true, Ordering::Relaxed),
        move |fault_at, end| {
            load::lines(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(move |c, _| {
                    let (small, large) = &batches[c];
                    if importing.load(Ordering::Relaxed) {
                        large.clone()
                    } else {
                        small.clone()
                    }
                }),
            )
        },
    )?;
    println!(
        "recorder_loss: {} rows imported",
        catalogue.imported.load(Ordering::Relaxed)
    );
    crate::svc::finish(ctx, "recorder_loss", &report, bytes)?;
    Ok(())
}

fn accept(listener: TcpListener, catalogue: Arc<Catalogue>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let catalogue = catalogue.clone();
        let spawned = std::thread::Builder::new()
            .name("import".into())
            .spawn(move || connection(stream, &catalogue));
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Serves one partner: batches of rows between `IMPORT` and `END`, each answered with
/// `IMPORTED n` or `ERR ...`.
fn connection(stream: TcpStream, catalogue: &Catalogue) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut rows = Vec::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        match line.trim_end() {
            "IMPORT" => rows.clear(),
            "END" => {
                let reply = {
                    let _task = fdr::task("import batch");
                    match import(&rows, catalogue) {
                        Ok(n) => format!("IMPORTED {n}\n"),
                        Err(at) => format!("ERR bad row {at}\n"),
                    }
                };
                rows.clear();
                if writer.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
            row if rows.len() < MAX_BATCH_ROWS => rows.push(row.to_string()),
            _ => {
                let _ = writer.write_all(b"ERR batch too long\n");
                return;
            }
        }
    }
}

/// A catalogue row.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "some fields are read only through Debug, in the row's log"
)]
struct Row<'a> {
    line: usize,
    sku: &'a str,
    name: &'a str,
    price_cents: u64,
    stock: u32,
    category: &'a str,
    tags: Vec<&'a str>,
}

/// Parses and applies `sku,name,price,stock,category,tags` rows (tags separated by `;`);
/// the number imported, or the first bad line.
fn import(rows: &[String], catalogue: &Catalogue) -> Result<u64, usize> {
    let mut parsed = Vec::with_capacity(rows.len());
    for (i, line) in rows.iter().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let [sku, name, price, stock, category, tags] = f[..] else {
            return Err(i + 1);
        };
        let price: f64 = price.parse().map_err(|_| i + 1)?;
        let row = Row {
            line: i + 1,
            sku,
            name,
            price_cents: (price * 100.0).round() as u64,
            stock: stock.parse().map_err(|_| i + 1)?,
            category,
            tags: tags.split(';').collect(),
        };
        fdr::log!("import", "{row:?}"); // FAULT: recorder-loss
        parsed.push(row);
    }
    let mut items = catalogue
        .items
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for row in &parsed {
        items.insert(row.sku.to_string(), (row.price_cents, row.stock));
    }
    catalogue
        .imported
        .fetch_add(parsed.len() as u64, Ordering::Relaxed);
    Ok(parsed.len() as u64)
}

/// A batch of `rows` rows as partner `c` sends it (`IMPORT`, the rows, `END`).
fn batch(c: usize, rows: usize) -> String {
    let mut b = String::from("IMPORT\n");
    for r in 0..rows {
        b.push_str(&format!(
            "sku-{c}-{r:06},Widget model {r} in assorted colours,{}.99,{},hardware/fasteners,steel;bulk;partner-{c};restock\n",
            r % 100,
            r % 17
        ));
    }
    b.push_str("END");
    b
}
