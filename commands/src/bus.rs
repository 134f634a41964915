//! The command bus: one PostgreSQL transaction per command.
//!
//! ```text
//! BEGIN
//!   idempotency: try the key's advisory lock (409 if held) → stored response? replay (no events)
//!   load the aggregate from its stream                      (reads only: no transaction id yet;
//!                                                            skipped for a stream just named)
//!   decide: Aggregate::handle                               (pure, in `domain`)
//!   append the events in one INSERT, with NOTIFY bw_events  (first write: assigns the xid;
//!                                                            the NOTIFY is delivered at commit)
//!   reservations (username, credentials)                    (unique keys decide races)
//!   idempotency record with the response and position
//! COMMIT                                                    → only now is the command acknowledged
//! ```
//!
//! Optimistic concurrency is not retried when a client's command intervened: re-deciding on state the
//! client never saw could overwrite that change; the client gets `409 CONFLICT` and decides (see
//! `docs/adr/0002-commit-safe-order.md`). Only when the intervening events are the platform's own (a
//! guardrail verdict) is the command decided again on the reloaded aggregate.

use bw_domain::{DomainError, meta::Actor};
use chrono::Utc;
use cqrs_es::{Aggregate, event_sink::EventSink};
use serde_json::{Map, Value};
use sqlx::PgPool;

use crate::{
    CommandError, idempotency,
    idempotency::{IdempotencyKey, StoredResponse},
    reservations,
};
use bw_eventlog::store::{self, Appended};

/// How often a conflict caused only by the platform's own events is decided again.
pub const SYSTEM_CONFLICT_RETRIES: u32 = 3;

/// How a command comes by its stream's state: loaded; loaded once it holds the stream's lock (see
/// [`CommandBus::execute_serialized`]); or none to load, the stream being new (see
/// [`CommandBus::execute_new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Loaded,
    Serialized,
    New,
}

/// Writes that commit with a command's events but are not events (see [`CommandBus::execute_with`]).
pub type SideWrites = Box<
    dyn for<'c> FnOnce(
            &'c mut sqlx::PgConnection,
        ) -> futures::future::BoxFuture<'c, Result<(), CommandError>>
        + Send,
>;

/// Who sent a command and how it relates to others; recorded in every event's metadata.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// The authenticated caller.
    pub actor: Actor,
    /// Ties together everything one request caused (the request id).
    pub correlation_id: String,
    /// The event that caused this command (sagas, guardrail), if any.
    pub causation_id: Option<String>,
    /// W3C trace context of the request.
    pub traceparent: Option<String>,
    /// The caller's idempotency key for this request.
    pub idempotency: Option<IdempotencyKey>,
}

impl CommandContext {
    /// The metadata object stored with each event.
    pub fn metadata(&self) -> Value {
        let mut map = Map::new();
        map.insert("actor".into(), Value::String(self.actor.scope()));
        map.insert(
            "correlationId".into(),
            Value::String(self.correlation_id.clone()),
        );
        if let Some(c) = &self.causation_id {
            map.insert("causationId".into(), Value::String(c.clone()));
        }
        if let Some(t) = &self.traceparent {
            map.insert("traceparent".into(), Value::String(t.clone()));
        }
        if let Some(k) = &self.idempotency {
            map.insert("idempotencyKey".into(), Value::String(k.scope_hex()));
        }
        Value::Object(map)
    }
}

/// What executing a command produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The command ran; its events are committed.
    Executed {
        /// The response, as also stored for replays.
        response: StoredResponse,
        /// The appended events with their global positions.
        events: Vec<Appended>,
    },
    /// An earlier request with the same key ran; this is its response, and nothing was appended.
    Replayed(StoredResponse),
}

impl Outcome {
    /// The response to send, whichever way it came.
    pub fn response(&self) -> &StoredResponse {
        match self {
            Self::Executed { response, .. } | Self::Replayed(response) => response,
        }
    }
}

/// Executes commands against the event store.
#[derive(Debug, Clone)]
pub struct CommandBus {
    pool: PgPool,
}

impl CommandBus {
    /// A bus over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool (for queries on the command side's own tables, such as credentials).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The stored response of an earlier request with `ctx`'s idempotency key, if there is one (a
    /// key reused with a different request is `IdempotencyMismatch`). For endpoints with work to do
    /// before the command (storing uploaded files) that a replay must not repeat; the command itself
    /// checks again in its transaction.
    pub async fn replayed(
        &self,
        ctx: &CommandContext,
    ) -> Result<Option<StoredResponse>, CommandError> {
        let Some(key) = &ctx.idempotency else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        idempotency::find(&mut conn, key).await
    }

    /// Loads an aggregate's current state from the log (outside any command's transaction: for
    /// facts another aggregate's decision needs, looked up first and passed in its command).
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<A, CommandError> {
        let mut conn = self.pool.acquire().await?;
        Ok(store::load::<A>(&mut conn, aggregate_id).await?.aggregate)
    }

    /// Runs `command` on aggregate `A` `aggregate_id` in one transaction (see the module
    /// documentation). `respond` builds the response from the global position of the last event;
    /// it is stored for replays in the same transaction.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        ctx: &CommandContext,
        respond: impl FnOnce(Option<i64>) -> StoredResponse,
    ) -> Result<Outcome, CommandError>
    where
        A: Aggregate<Error = DomainError, Services = ()>,
        A::Command: Clone,
    {
        self.execute_with::<A>(aggregate_id, command, ctx, None, respond)
            .await
    }

    /// [`CommandBus::execute`] for a stream the caller has just named with a fresh UUID v7 (a report,
    /// a proposal): there is nothing to load, so the command is decided on the empty aggregate, one
    /// round trip sooner. Were the stream to exist after all, the append would fail on its first
    /// sequence number ([`CommandError::Conflict`]), as with any writer that came first.
    pub async fn execute_new<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        ctx: &CommandContext,
        respond: impl FnOnce(Option<i64>) -> StoredResponse,
    ) -> Result<Outcome, CommandError>
    where
        A: Aggregate<Error = DomainError, Services = ()>,
    {
        let mut respond = Some(respond);
        self.attempt::<A>(
            aggregate_id,
            command,
            ctx,
            Stream::New,
            &mut None,
            &mut respond,
            &mut 0,
        )
        .await
    }

    /// [`CommandBus::execute`] for a stream whose commands are decided on its current state alone,
    /// never on what the client saw (a ledger: a spend is checked against the balance at the time):
    /// the transaction first waits for a lock on the stream, so concurrent commands on it are decided
    /// one after another instead of failing with a conflict, and each sees the others' events.
    pub async fn execute_serialized<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        ctx: &CommandContext,
        respond: impl FnOnce(Option<i64>) -> StoredResponse,
    ) -> Result<Outcome, CommandError>
    where
        A: Aggregate<Error = DomainError, Services = ()>,
    {
        self.execute_serialized_with::<A>(aggregate_id, command, ctx, None, respond)
            .await
    }

    /// [`CommandBus::execute_serialized`] with `side` writes in the same transaction (see
    /// [`CommandBus::execute_with`]).
    pub async fn execute_serialized_with<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        ctx: &CommandContext,
        side: Option<SideWrites>,
        respond: impl FnOnce(Option<i64>) -> StoredResponse,
    ) -> Result<Outcome, CommandError>
    where
        A: Aggregate<Error = DomainError, Services = ()>,
    {
        let mut side = side;
        let mut respond = Some(respond);
        let mut loaded_version = 0;
        self.attempt::<A>(
            aggregate_id,
            command,
            ctx,
            Stream::Serialized,
            &mut side,
            &mut respond,
            &mut loaded_version,
        )
        .await
    }

    /// [`CommandBus::execute`], with `side` run in the same transaction after the events are appended
    /// (only when the command appended any): data that must commit with the events but stays out of
    /// the log, such as personal contact details.
    ///
    /// A conflict is retried (up to [`SYSTEM_CONFLICT_RETRIES`] times, deciding again on the reloaded
    /// aggregate) only when every event that intervened was written by the platform itself (a
    /// guardrail verdict landing between an agent's load and append): no client decided on state the
    /// retry would overwrite. Any other conflict is the client's to resolve (`409`).
    pub async fn execute_with<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        ctx: &CommandContext,
        side: Option<SideWrites>,
        respond: impl FnOnce(Option<i64>) -> StoredResponse,
    ) -> Result<Outcome, CommandError>
    where
        A: Aggregate<Error = DomainError, Services = ()>,
        A::Command: Clone,
    {
        let mut side = side;
        let mut respond = Some(respond);
        let mut attempt = 0;
        loop {
            let mut loaded_version = 0;
            let result = self
                .attempt::<A>(
                    aggregate_id,
                    command.clone(),
                    ctx,
                    Stream::Loaded,
                    &mut side,
                    &mut respond,
                    &mut loaded_version,
                )
                .await;
            match result {
                Err(CommandError::Conflict { aggregate_type })
                    if attempt < SYSTEM_CONFLICT_RETRIES
                        && self
                            .only_system_since(aggregate_type, aggregate_id, loaded_version)
                            .await? =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Whether every event of the stream after `version` was written by the platform itself.
    async fn only_system_since(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        version: i64,
    ) -> Result<bool, CommandError> {
        let system = bw_domain::meta::Actor::System.scope();
        Ok(bw_eventlog::read::only_actor_since(
            &self.pool,
            aggregate_type,
            aggregate_id,
            version,
            &system,
        )
        .await?)
    }

    /// One try of [`CommandBus::execute_with`]; `side` and `respond` are consumed only when the
    /// events were appended.
    #[expect(
        clippy::too_many_arguments,
        reason = "private: the public entry points each pass a fixed subset"
    )]
    async fn attempt<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        ctx: &CommandContext,
        stream: Stream,
        side: &mut Option<SideWrites>,
        respond: &mut Option<impl FnOnce(Option<i64>) -> StoredResponse>,
        loaded_version: &mut i64,
    ) -> Result<Outcome, CommandError>
    where
        A: Aggregate<Error = DomainError, Services = ()>,
    {
        let mut tx = self.pool.begin().await?;
        if let Some(key) = &ctx.idempotency {
            idempotency::lock(&mut tx, key).await?;
            if let Some(stored) = idempotency::find(&mut tx, key).await? {
                tx.rollback().await?;
                return Ok(Outcome::Replayed(stored));
            }
        }
        if stream == Stream::Serialized {
            // Held to the end of the transaction; taken after the idempotency key's try-lock, which
            // never waits, so two commands cannot wait on each other.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
                .bind(format!("stream:{}:{aggregate_id}", A::TYPE))
                .execute(&mut *tx)
                .await?;
        }
        let mut loaded = if stream == Stream::New {
            store::Loaded::empty()
        } else {
            store::load::<A>(&mut tx, aggregate_id).await?
        };
        *loaded_version = loaded.version;
        let sink = EventSink::default();
        loaded.aggregate.handle(command, &(), &sink).await?;
        let events = sink.collect().await;
        let prepared = store::prepare::<A>(
            aggregate_id,
            loaded.version,
            loaded.last_hash,
            &events,
            &ctx.metadata(),
            Utc::now(),
        )?;
        let appended = match store::append(&mut tx, A::TYPE, &prepared).await {
            Ok(appended) => appended,
            Err(e) => {
                // Release the idempotency lock now, not when the pool gets to it: a retry of this
                // very command must not find its own earlier attempt still holding the key.
                tx.rollback().await?;
                return Err(e.into());
            }
        };
        reservations::apply(&mut tx, &prepared).await?;
        if !appended.is_empty()
            && let Some(side) = side.take()
        {
            side(&mut tx).await?;
        }
        let respond = respond
            .take()
            .ok_or_else(|| CommandError::Corrupt("response built twice".into()))?;
        let response = respond(appended.last().map(|a| a.global_position));
        if let Some(key) = &ctx.idempotency {
            idempotency::record(&mut tx, key, &response).await?;
        }
        tx.commit().await?;
        Ok(Outcome::Executed {
            response,
            events: appended,
        })
    }
}
