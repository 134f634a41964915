//! The `Ledger` aggregate: one person's ImpactTokens (`domain-reference.md` §1.11, §5.1).
//!
//! One stream per person (the stream id is the person's id). Every entry names a key — the
//! idempotency key of §5.1 (`orientation-{humanId}`, `evidence-reward:{evidenceId}`,
//! `peer-review-reward:{reviewId}`, or the client's key for a spend) — and the entry id derives from
//! it, so a saga that credits twice, or a client that retries, records one entry. Rules: amounts are
//! positive integers; credits are `earn_*` entries and debits `spend_*` ones; a debit never takes the
//! balance below zero; a key names one entry forever (the same key with different terms is refused).
//!
//! Concurrent commands on one ledger are serialised by the command bus
//! (`CommandBus::execute_serialized` in `bw-commands`), so each is decided on the balance left by the one before.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent, event_sink::EventSink};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;

/// The largest single entry (a guard against typos and overflow, far above any reward).
pub const MAX_AMOUNT: i64 = 1_000_000;
/// The orientation bonus, paid once (§5.1).
pub const ORIENTATION_REWARD: i64 = 10;
/// The reward for each accepted peer-review vote (§5.1).
pub const PEER_REVIEW_REWARD: i64 = 2;

/// What an entry is for (§1.11's transaction types that this platform writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    EarnOrientation,
    EarnEvidenceVerified,
    EarnPeerReview,
    SpendVote,
    SpendCircle,
    SpendAnalytics,
    SpendCustom,
}

impl EntryKind {
    /// Every kind.
    pub const ALL: [Self; 7] = [
        Self::EarnOrientation,
        Self::EarnEvidenceVerified,
        Self::EarnPeerReview,
        Self::SpendVote,
        Self::SpendCircle,
        Self::SpendAnalytics,
        Self::SpendCustom,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EarnOrientation => "earn_orientation",
            Self::EarnEvidenceVerified => "earn_evidence_verified",
            Self::EarnPeerReview => "earn_peer_review",
            Self::SpendVote => "spend_vote",
            Self::SpendCircle => "spend_circle",
            Self::SpendAnalytics => "spend_analytics",
            Self::SpendCustom => "spend_custom",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether entries of this kind add to the balance.
    pub fn is_credit(self) -> bool {
        matches!(
            self,
            Self::EarnOrientation | Self::EarnEvidenceVerified | Self::EarnPeerReview
        )
    }
}

/// What an entry refers to, if anything (`referenceType` and `referenceId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// `problem`, `solution`, `mission`, `circle`, `evidence` or `peer_review`.
    pub reference_type: String,
    pub reference_id: Uuid,
}

/// The terms of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The entry's idempotency key: 1–64 visible ASCII characters.
    pub key: String,
    /// Positive.
    pub amount: i64,
    pub kind: EntryKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// At most 500 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Entry {
    /// The entry id that `key` gives on `human_id`'s ledger: the same key, the same id, always.
    pub fn id(human_id: Uuid, key: &str) -> Uuid {
        Uuid::new_v5(&human_id, format!("ledger-entry:{key}").as_bytes())
    }

    fn validate(&self) -> Result<(), DomainError> {
        if self.key.is_empty()
            || self.key.len() > 64
            || !self.key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(DomainError::invalid(
                "idempotencyKey",
                "1–64 visible ASCII characters",
            ));
        }
        if !(1..=MAX_AMOUNT).contains(&self.amount) {
            return Err(DomainError::invalid(
                "amount",
                format!("a whole number of tokens, 1–{MAX_AMOUNT}"),
            ));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 500)
        {
            return Err(DomainError::invalid(
                "description",
                "at most 500 characters",
            ));
        }
        Ok(())
    }
}

/// Commands of the `Ledger` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerCommand {
    /// Adds `entry.amount` (an `earn_*` entry); a repeat of the same entry records nothing.
    Credit {
        human_id: Uuid,
        entry: Entry,
        at: DateTime<Utc>,
    },
    /// Takes `entry.amount` (a `spend_*` entry) if the balance covers it; a repeat records nothing.
    Debit {
        human_id: Uuid,
        entry: Entry,
        at: DateTime<Utc>,
    },
}

/// One recorded entry, as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    pub human_id: Uuid,
    pub entry_id: Uuid,
    #[serde(flatten)]
    pub entry: Entry,
    pub balance_before: i64,
    pub balance_after: i64,
    pub recorded_at: DateTime<Utc>,
}

/// Events of the `Ledger` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum LedgerEvent {
    /// Tokens were added. Version 1.
    TokensCredited(Recorded),
    /// Tokens were taken. Version 1.
    TokensDebited(Recorded),
}

impl DomainEvent for LedgerEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TokensCredited(_) => "TokensCredited",
            Self::TokensDebited(_) => "TokensDebited",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// A person's ledger as decisions need it: the balance and the terms of every key used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    balance: i64,
    entries: HashMap<String, (i64, EntryKind)>,
}

impl Ledger {
    /// The current balance.
    pub fn balance(&self) -> i64 {
        self.balance
    }

    /// Whether an entry with `key` is recorded.
    pub fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// `Ok(true)` when `entry` repeats a recorded one (nothing to do), `Ok(false)` when its key is new.
    fn repeat(&self, entry: &Entry) -> Result<bool, DomainError> {
        match self.entries.get(&entry.key) {
            None => Ok(false),
            Some(&(amount, kind)) if amount == entry.amount && kind == entry.kind => Ok(true),
            Some(_) => Err(DomainError::InvalidState(
                "this idempotency key was used for a different entry",
            )),
        }
    }
}

impl Aggregate for Ledger {
    const TYPE: &'static str = "Ledger";
    type Command = LedgerCommand;
    type Event = LedgerEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let (human_id, entry, at, credit) = match command {
            LedgerCommand::Credit {
                human_id,
                entry,
                at,
            } => (human_id, entry, at, true),
            LedgerCommand::Debit {
                human_id,
                entry,
                at,
            } => (human_id, entry, at, false),
        };
        entry.validate()?;
        if entry.kind.is_credit() != credit {
            return Err(DomainError::invalid(
                "type",
                if credit {
                    "a credit is an earn_* entry"
                } else {
                    "a spend is a spend_* entry"
                },
            ));
        }
        if self.repeat(&entry)? {
            return Ok(());
        }
        let balance_after = if credit {
            self.balance + entry.amount
        } else {
            if entry.amount > self.balance {
                return Err(DomainError::InsufficientTokens {
                    balance: self.balance,
                    requested: entry.amount,
                });
            }
            self.balance - entry.amount
        };
        let recorded = Recorded {
            human_id,
            entry_id: Entry::id(human_id, &entry.key),
            entry,
            balance_before: self.balance,
            balance_after,
            recorded_at: at,
        };
        let event = if credit {
            LedgerEvent::TokensCredited(recorded)
        } else {
            LedgerEvent::TokensDebited(recorded)
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let (LedgerEvent::TokensCredited(r) | LedgerEvent::TokensDebited(r)) = event;
        self.balance = r.balance_after;
        self.entries
            .insert(r.entry.key, (r.entry.amount, r.entry.kind));
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    const HUMAN: Uuid = Uuid::from_u128(42);

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid")
    }

    fn entry(key: &str, amount: i64, kind: EntryKind) -> Entry {
        Entry {
            key: key.to_owned(),
            amount,
            kind,
            reference: None,
            description: None,
        }
    }

    fn credit(key: &str, amount: i64) -> LedgerCommand {
        LedgerCommand::Credit {
            human_id: HUMAN,
            entry: entry(key, amount, EntryKind::EarnOrientation),
            at: at(),
        }
    }

    fn debit(key: &str, amount: i64) -> LedgerCommand {
        LedgerCommand::Debit {
            human_id: HUMAN,
            entry: entry(key, amount, EntryKind::SpendVote),
            at: at(),
        }
    }

    fn recorded(key: &str, amount: i64, kind: EntryKind, before: i64, after: i64) -> Recorded {
        Recorded {
            human_id: HUMAN,
            entry_id: Entry::id(HUMAN, key),
            entry: entry(key, amount, kind),
            balance_before: before,
            balance_after: after,
            recorded_at: at(),
        }
    }

    fn credited(key: &str, amount: i64, before: i64) -> LedgerEvent {
        LedgerEvent::TokensCredited(recorded(
            key,
            amount,
            EntryKind::EarnOrientation,
            before,
            before + amount,
        ))
    }

    fn debited(key: &str, amount: i64, before: i64) -> LedgerEvent {
        LedgerEvent::TokensDebited(recorded(
            key,
            amount,
            EntryKind::SpendVote,
            before,
            before - amount,
        ))
    }

    #[test]
    fn given_an_empty_ledger_when_crediting_then_the_entry_records_balance_before_and_after() {
        TestFramework::<Ledger>::with(())
            .given_no_previous_events()
            .when(credit("orientation-1", 10))
            .then_expect_events(vec![credited("orientation-1", 10, 0)]);
    }

    #[test]
    fn given_a_balance_when_spending_part_of_it_then_debited_down_to_the_rest() {
        TestFramework::<Ledger>::with(())
            .given(vec![credited("a", 10, 0)])
            .when(debit("spend-1", 4))
            .then_expect_events(vec![debited("spend-1", 4, 10)]);
    }

    #[test]
    fn given_a_balance_when_spending_all_of_it_then_the_balance_is_zero() {
        TestFramework::<Ledger>::with(())
            .given(vec![credited("a", 10, 0), debited("s1", 4, 10)])
            .when(debit("s2", 6))
            .then_expect_events(vec![debited("s2", 6, 6)]);
    }

    #[test]
    fn given_a_balance_when_spending_more_than_it_then_insufficient_tokens() {
        TestFramework::<Ledger>::with(())
            .given(vec![credited("a", 10, 0)])
            .when(debit("s1", 11))
            .then_expect_error(DomainError::InsufficientTokens {
                balance: 10,
                requested: 11,
            });
    }

    #[test]
    fn given_an_entry_when_the_same_entry_comes_again_then_nothing_is_recorded() {
        TestFramework::<Ledger>::with(())
            .given(vec![credited("evidence-reward:1", 40, 0)])
            .when(credit("evidence-reward:1", 40))
            .then_expect_events(vec![]);
        TestFramework::<Ledger>::with(())
            .given(vec![credited("a", 10, 0), debited("s1", 4, 10)])
            .when(debit("s1", 4))
            .then_expect_events(vec![]);
    }

    #[test]
    fn given_an_entry_when_its_key_comes_with_other_terms_then_refused() {
        TestFramework::<Ledger>::with(())
            .given(vec![credited("a", 10, 0)])
            .when(credit("a", 11))
            .then_expect_error(DomainError::InvalidState(
                "this idempotency key was used for a different entry",
            ));
    }

    #[test]
    fn given_any_ledger_when_an_amount_is_not_positive_or_too_large_then_invalid() {
        for amount in [0, -5, MAX_AMOUNT + 1] {
            let result = TestFramework::<Ledger>::with(())
                .given(vec![credited("a", 10, 0)])
                .when(debit("s", amount))
                .inspect_result();
            assert!(
                matches!(
                    result,
                    Err(DomainError::InvalidValue {
                        field: "amount",
                        ..
                    })
                ),
                "{amount}: {result:?}"
            );
        }
    }

    #[test]
    fn given_any_ledger_when_the_direction_and_kind_disagree_then_invalid() {
        let spend_as_credit = LedgerCommand::Credit {
            human_id: HUMAN,
            entry: entry("x", 5, EntryKind::SpendVote),
            at: at(),
        };
        let earn_as_debit = LedgerCommand::Debit {
            human_id: HUMAN,
            entry: entry("y", 5, EntryKind::EarnPeerReview),
            at: at(),
        };
        for command in [spend_as_credit, earn_as_debit] {
            let result = TestFramework::<Ledger>::with(())
                .given(vec![credited("a", 10, 0)])
                .when(command)
                .inspect_result();
            assert!(
                matches!(result, Err(DomainError::InvalidValue { field: "type", .. })),
                "{result:?}"
            );
        }
    }

    #[test]
    fn given_any_ledger_when_a_key_or_description_is_malformed_then_invalid() {
        let mut long_key = entry(&"k".repeat(65), 1, EntryKind::EarnOrientation);
        assert!(long_key.validate().is_err());
        long_key.key = "has space".into();
        assert!(long_key.validate().is_err());
        let mut described = entry("ok", 1, EntryKind::SpendCustom);
        described.description = Some("d".repeat(501));
        assert_eq!(
            described.validate(),
            Err(DomainError::invalid(
                "description",
                "at most 500 characters"
            ))
        );
    }

    #[test]
    fn entry_ids_follow_from_the_key_and_the_person() {
        assert_eq!(Entry::id(HUMAN, "a"), Entry::id(HUMAN, "a"));
        assert_ne!(Entry::id(HUMAN, "a"), Entry::id(HUMAN, "b"));
        assert_ne!(Entry::id(HUMAN, "a"), Entry::id(Uuid::from_u128(43), "a"));
        for kind in EntryKind::ALL {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
    }
}
