#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod breaker;
#[cfg(feature = "contract")]
pub mod contract;
pub mod core;
pub mod dependency;
pub mod fault;
#[cfg(feature = "guardrails")]
pub mod guardrails;
pub mod map;
pub mod observe;
pub mod policy;
pub mod retry;
pub mod shed;
pub mod throttle;
pub mod timeout;

pub use crate::core::{Deadline, Error, Rejection};
