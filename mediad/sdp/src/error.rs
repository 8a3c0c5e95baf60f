//! Errors of the SDP layer.
//!
//! Messages never contain text copied from the SDP (no ufrag, password,
//! cname or msid): only line numbers, m-line indexes and static reasons, so
//! an error can be logged as is.

/// Why an SDP was refused or could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The SDP is larger than [`crate::MAX_SDP_LEN`].
    #[error("sdp too large: {len} bytes")]
    TooLarge {
        /// Size of the input in bytes.
        len: usize,
    },
    /// The input is not UTF-8.
    #[error("sdp is not valid utf-8")]
    NotUtf8,
    /// A line is longer than [`crate::MAX_LINE_LEN`].
    #[error("line {line}: longer than the limit")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
    },
    /// More m-lines than [`crate::MAX_MEDIA`].
    #[error("too many media sections")]
    TooManyMedia,
    /// Too many items of one kind (ssrcs, rids, ...) in one place.
    #[error("line {line}: too many {what}")]
    TooMany {
        /// 1-based line number.
        line: usize,
        /// What overflowed.
        what: &'static str,
    },
    /// A line does not follow the grammar.
    #[error("line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A required session-level item is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A required item is absent from (or wrong in) one media section.
    #[error("media section {index}: {reason}")]
    Media {
        /// 0-based m-line index.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The SDP is well formed but uses something Salon does not support.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// Local parameters given to a builder are invalid.
    #[error("invalid local parameter: {0}")]
    InvalidLocal(&'static str),
    /// A subscribe answer has a different number of m-lines than the offer.
    #[error("answer has {got} media sections, offer had {expected}")]
    MediaCountMismatch {
        /// m-lines in the offer.
        expected: usize,
        /// m-lines in the answer.
        got: usize,
    },
}
