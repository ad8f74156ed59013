//! gRPC contracts: required metadata, a maximum message size read from the length-prefixed
//! frames, and a hook for message-level validation.

use std::fmt;
use std::sync::Arc;

pub use crate::core::framing::MessageTooLarge;
pub(crate) use crate::core::framing::{FRAME_HEADER, FirstFrame, FrameChecker, first_frame};

use http::HeaderName;

pub(crate) type MessageCheck = dyn Fn(&[u8]) -> Result<(), String> + Send + Sync;

/// The contract of one gRPC method.
///
/// ```
/// use steadfast::contract::GrpcMethod;
///
/// let method = GrpcMethod::new()
///     .require_metadata(http::HeaderName::from_static("x-tenant"))
///     .max_message_bytes(64 * 1024)
///     .validate_message(|message| {
///         // Decode with prost (or any codec) and check what the schema cannot say.
///         if message.is_empty() { Err("an empty request".into()) } else { Ok(()) }
///     });
/// # let _ = method;
/// ```
#[derive(Clone, Default)]
pub struct GrpcMethod {
    pub(crate) required_metadata: Vec<HeaderName>,
    pub(crate) max_message_bytes: Option<usize>,
    pub(crate) check: Option<Arc<MessageCheck>>,
}

impl fmt::Debug for GrpcMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcMethod")
            .field("required_metadata", &self.required_metadata)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("validate_message", &self.check.is_some())
            .finish()
    }
}

impl GrpcMethod {
    /// No requirements beyond the layer's default message size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls without this metadata key are rejected with `INVALID_ARGUMENT`.
    pub fn require_metadata(mut self, key: HeaderName) -> Self {
        self.required_metadata.push(key);
        self
    }

    /// The largest request message, checked on each frame's length prefix (overrides
    /// [`ContractConfig::grpc_max_message_bytes`](super::ContractConfig::grpc_max_message_bytes)).
    pub fn max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = Some(max);
        self
    }

    /// Checks the first request message (the serialized protobuf, uncompressed frames only)
    /// before the handler runs; an `Err` is answered with `INVALID_ARGUMENT` and its text.
    pub fn validate_message(
        mut self,
        check: impl Fn(&[u8]) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.check = Some(Arc::new(check));
        self
    }
}
