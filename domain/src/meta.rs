//! Who issues a command.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The authenticated party behind a command, recorded in every event's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// No credentials (registration).
    Anonymous,
    /// An agent, by id.
    Agent(Uuid),
    /// A human, by id.
    Human(Uuid),
    /// The platform itself (projectors, sagas, schedulers).
    System,
}

impl Actor {
    /// A stable text form (`agent:<uuid>`), used to scope idempotency keys and in event metadata.
    pub fn scope(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".to_owned(),
            Self::Agent(id) => format!("agent:{id}"),
            Self::Human(id) => format!("human:{id}"),
            Self::System => "system".to_owned(),
        }
    }
}
