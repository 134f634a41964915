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
    /// The aggregate already exists (a create command ran twice with the same id).
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The aggregate does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The actor may not do this to this aggregate.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Someone else holds the item (an admin's claim on flagged content).
    #[error("{0}")]
    AlreadyClaimed(&'static str),
    /// The reviewer has voted on this item already.
    #[error("you have voted on this evidence already")]
    DuplicateVote,
    /// The command does not fit the aggregate's current state.
    #[error("{0}")]
    InvalidState(&'static str),
    /// A spend larger than the balance.
    #[error("the balance is {balance} tokens; {requested} were asked for")]
    InsufficientTokens {
        /// The balance at the time of the decision.
        balance: i64,
        /// The amount asked for.
        requested: i64,
    },
}

impl DomainError {
    /// Shorthand for [`DomainError::InvalidValue`].
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidValue {
            field,
            message: message.into(),
        }
    }
}
