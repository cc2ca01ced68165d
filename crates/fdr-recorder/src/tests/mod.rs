//! The recorder's protocol tests inside the crate, where the internals they drive are
//! visible: the loom models (built only with `--cfg loom`, tokio's layout) and the chunk
//! writer's tests.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p fdr-recorder --release --lib` runs the models
//! (`cargo xtask ci` does, with a bounded preemption count).

#[cfg(loom)]
mod loom_chunk;
#[cfg(loom)]
mod loom_metrics;
#[cfg(loom)]
mod loom_signal;
#[cfg(not(loom))]
mod writer;
