//! The atomics behind steadfast's lock-free state, in one place so that `loom` can stand in for
//! them: `RUSTFLAGS="--cfg loom" cargo test --release --lib loom` model-checks every interleaving.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
