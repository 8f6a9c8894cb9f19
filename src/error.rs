//! The class of an error, as data, and the one error that stops the stream.
//!
//! Every error type in the crate answers [`Classify::disposition`]: what waiting or retrying
//! can do about it. A loop that handles errors (the writer's retries, the pipeline's dead
//! letters, the repair worker) is then one `match` on a [`Disposition`], never a test of
//! where the error happened or of its text.
//!
//! - [`Disposition::Retry`]: the same call may succeed later (throttling, timeouts, a store
//!   that is down). Retried with the one retry policy (`sink::retry`).
//! - [`Disposition::Poison`]: this input can never succeed (a record that can't be decoded or
//!   mapped, an item DynamoDB refuses). Dead-lettered or dropped with its reason; the stream
//!   goes on.
//! - [`Disposition::Fatal`]: nothing will work until an operator acts (missing table, bad
//!   credentials, an unusable configuration). The process stops without committing.

use std::fmt;
use std::sync::Arc;

/// What to do with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Try again after a delay.
    Retry,
    /// Give up on this input (dead-letter it, or drop it with its reason) and go on.
    Poison,
    /// Stop.
    Fatal,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Retry => "retry",
            Disposition::Poison => "poison",
            Disposition::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its class.
pub trait Classify {
    fn disposition(&self) -> Disposition;

    fn is_retryable(&self) -> bool {
        self.disposition() == Disposition::Retry
    }
}

/// The error that stops a stream (`run`, `replay`): the writer gave up, the dead-letter topic
/// is unreachable, a table is missing. Keeps the error it came from (shown as that error, with
/// its source chain), so the class and the detail are never flattened into text.
#[derive(Clone)]
pub struct FatalError(Inner);

#[derive(Clone)]
enum Inner {
    Message(String),
    Error(Arc<dyn std::error::Error + Send + Sync + 'static>),
}

impl FatalError {
    /// A fatal error described by `message` alone.
    pub fn new(message: impl Into<String>) -> Self {
        FatalError(Inner::Message(message.into()))
    }

    /// A fatal error that is `source` (displayed as it, with its source chain).
    pub fn from_error(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        FatalError(Inner::Error(Arc::new(source)))
    }

    /// The error this one was made from, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match &self.0 {
            Inner::Message(_) => None,
            Inner::Error(e) => e.downcast_ref::<T>(),
        }
    }
}

impl fmt::Display for FatalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Message(m) => f.write_str(m),
            Inner::Error(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl fmt::Debug for FatalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Message(m) => f.debug_tuple("FatalError").field(m).finish(),
            Inner::Error(e) => f.debug_tuple("FatalError").field(e).finish(),
        }
    }
}

impl std::error::Error for FatalError {
    // Transparent: the wrapped error's own source, so a `{:#}` chain names each cause once.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Inner::Message(_) => None,
            Inner::Error(e) => e.source(),
        }
    }
}

impl Classify for FatalError {
    fn disposition(&self) -> Disposition {
        Disposition::Fatal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_fatal_error_shows_and_keeps_what_it_wraps() {
        let e = FatalError::from_error(Outer(std::io::Error::other("inner")));
        assert_eq!(e.to_string(), "outer");
        assert_eq!(
            std::error::Error::source(&e).map(|s| s.to_string()),
            Some("inner".into())
        );
        assert!(e.downcast_ref::<Outer>().is_some());
        assert_eq!(e.disposition(), Disposition::Fatal);
        assert_eq!(FatalError::new("x").to_string(), "x");
    }
}
