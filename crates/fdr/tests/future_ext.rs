//! fdr's future extension trait imports by name beside the traits users already import
//! (`futures`' `FutureExt`, `tracing`'s `Instrument`), and its methods work through the facade.
//! (Own test binary: it starts the global recorder.)

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use fdr::FdrFutureExt;
use futures_util::FutureExt;
use tracing::Instrument;

/// Polls a future that never waits to completion.
fn run_ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future was expected to be ready"),
    }
}

#[test]
fn fdrs_extension_trait_imports_beside_futures_and_tracing() {
    fdr::start(fdr::Config::default()).unwrap();
    let fut = async { 20 }
        .in_region("db") // fdr
        .map(|v| v + 1) // futures
        .instrument(tracing::info_span!("request")) // tracing
        .traced("request"); // fdr
    assert_eq!(run_ready(fut), 21);
    assert_eq!(run_ready(async { 1 }.fuse().traced("fused")), 1);
}

/// Code written against the former name, in a scope of its own (importing both names makes
/// `.traced` ambiguous).
#[allow(deprecated, reason = "the former name still works, for one release")]
mod former_name {
    use fdr::FutureExt as _;

    #[test]
    fn the_former_name_still_works() {
        assert_eq!(super::run_ready(async { 2 }.traced("old name")), 2);
    }
}
