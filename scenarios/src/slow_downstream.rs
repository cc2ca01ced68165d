//! A storefront API on tokio: each product page asks the inventory service (another service
//! on loopback) for the stock level over async TCP, then renders. Nothing in the handler
//! blocks a thread or is annotated for fdr: the wait is an `.await` on a socket.
//!
//! The fault: the inventory service degrades (a slow query on its side) and answers in
//! 30–50 ms instead of about a millisecond.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::svc::backend::{self, Backend};
use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// Route: the product page.
const ROUTE: &str = "http GET /product";

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let inventory = Backend::start(
        "inventory-service",
        Duration::from_micros(500),
        Duration::from_micros(1500),
    )?;
    let rt = crate::svc::runtime(None)?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let inv = inventory.addr;
    rt.spawn(http::serve(listener, ROUTE, move |req| handle(inv, req)));
    let spec = Spec {
        clients: 16,
        think: Duration::from_millis(1),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        || inventory.set_latency(Duration::from_millis(30), Duration::from_millis(50)),
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| {
                    Request::get(format!(
                        "http://shop/product?sku={}",
                        (c as u64 * 7919 + n) % 5000
                    ))
                    .body(Full::new(Bytes::new()))
                    .expect("a valid request")
                }),
            )
        },
    )?;
    crate::svc::finish(ctx, "slow_downstream", &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn handle(inventory: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let sku = http::query(&req, "sku").unwrap_or("0").to_string();
    let stock = backend::call(inventory, &format!("STOCK {sku}")).await; // FAULT: slow-downstream
    let stock = match stock {
        Ok(s) => s,
        Err(e) => return http::error(StatusCode::BAD_GATEWAY, &format!("inventory: {e}")),
    };
    let page = fdr::with_region("render", || {
        format!("<h1>Product {sku}</h1><p>In stock: {stock}</p>")
    });
    fdr::log!("http", "GET /product sku={sku}");
    http::ok(page)
}
