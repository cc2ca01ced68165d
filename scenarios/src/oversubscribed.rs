//! An image service on tokio: `POST /album` renders a thumbnail of every photo of an album.
//! The handler fans out one task per photo and joins them; each thumbnail is a short burst
//! of CPU (well under a millisecond), so no single poll is long.
//!
//! The fault: a client starts uploading albums of dozens of photos at a steady rate. The
//! fan-out has no bound, so the runtime's two workers always have hundreds of runnable
//! thumbnail tasks queued: every task, including every request's own, waits its turn for a
//! worker (more CPU-bound runnable work than workers).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;

use crate::svc::http::{self, Body};
use crate::svc::load::{self, Spec};
use crate::svc::{BoxError, Ctx};

/// What one thumbnail costs on this host; the photos' size is chosen to match.
const THUMBNAIL_COST: Duration = Duration::from_micros(250);
/// Tokio workers of the service (a small container).
const WORKERS: usize = 2;

struct Images {
    photo_pixels: usize,
    photos_per_album: AtomicU64,
}

/// Runs the scenario.
pub(crate) fn run(ctx: &Ctx) -> Result<(), BoxError> {
    crate::svc::start_fdr(ctx, fdr::FlightConfig::default())?;
    let photo_pixels = crate::svc::size_for(THUMBNAIL_COST, 1024, |n| {
        move || {
            std::hint::black_box(thumbnail(n, 7));
        }
    });
    println!("oversubscribed: photos of {photo_pixels} pixels");
    let images = Arc::new(Images {
        photo_pixels,
        photos_per_album: AtomicU64::new(2),
    });
    let rt = crate::svc::runtime(Some(WORKERS))?;
    let listener = rt.block_on(TcpListener::bind(("127.0.0.1", 0)))?;
    let addr = listener.local_addr()?;
    let i = images.clone();
    rt.spawn(http::serve(listener, "http POST /album", move |req| {
        handle(i.clone(), req)
    }));
    let spec = Spec {
        clients: 8,
        think: Duration::from_millis(2),
    };
    let (report, bytes) = crate::svc::incident(
        ctx,
        || images.photos_per_album.store(48, Ordering::Relaxed),
        move |fault_at, end| {
            load::http(
                addr,
                spec,
                fault_at,
                end,
                Arc::new(|c, n| {
                    Request::post(format!("http://images/album?id={}", c as u64 * 100_000 + n))
                        .body(Full::new(Bytes::new()))
                        .expect("a valid request")
                }),
            )
        },
    )?;
    crate::svc::finish(ctx, "oversubscribed", &report, bytes)?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn handle(images: Arc<Images>, req: Request<Incoming>) -> Response<Body> {
    let album = http::query(&req, "id").unwrap_or("0").to_string();
    let photos = images.photos_per_album.load(Ordering::Relaxed);
    let pixels = images.photo_pixels;
    let tasks: Vec<_> = (0..photos)
        .map(|p| fdr::spawn("thumbnail", async move { thumbnail(pixels, p) })) // FAULT: oversubscribed
        .collect();
    let mut digest = 0u64;
    for t in tasks {
        digest ^= t.await.unwrap_or(0);
    }
    fdr::log!("http", "POST /album {album}: {photos} thumbnails");
    http::ok(format!(
        "{{\"album\":\"{album}\",\"thumbnails\":{photos},\"digest\":{digest}}}"
    ))
}

/// Downscales a photo of `pixels` pixels by 4x4 box averaging; a digest of the result.
fn thumbnail(pixels: usize, seed: u64) -> u64 {
    let side = (pixels as f64).sqrt() as usize + 1;
    let mut digest = seed;
    for by in (0..side).step_by(4) {
        for bx in (0..side).step_by(4) {
            let mut sum = 0u64;
            for y in by..by + 4 {
                for x in bx..bx + 4 {
                    sum += ((x * 31 + y * 17) as u64 ^ seed) & 0xff;
                }
            }
            digest = digest.rotate_left(7) ^ (sum / 16);
        }
    }
    digest
}
