//! The domain's one error type.

/// A value or a decision the domain refuses, with a message fit for the client who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A value outside its allowed set or range; `field` names it as the API does.
    #[error("{field}: {message}")]
    InvalidValue {
        /// The field (camelCase, as in the API).
        field: &'static str,
        /// What is wrong, including what would be accepted.
        message: String,
    },
}
