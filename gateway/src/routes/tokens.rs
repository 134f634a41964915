//! ImpactTokens (`domain-reference.md` §1.11, §5.1): the caller's balance and entries, spending, and
//! the one-time orientation reward. Every write goes to the person's `Ledger` stream through
//! [`CommandBus::execute_serialized`](bw_commands::CommandBus::execute_serialized): concurrent spends
//! are decided one after another on the balance each leaves, so none is lost and none overdraws.

use axum::{
    Router,
    extract::Query,
    http::HeaderMap,
    routing::{get, post},
};
use bw_commands::{CommandBus, CommandContext, Outcome, idempotency::StoredResponse};
use bw_domain::{
    ledger::{Entry, EntryKind, Ledger, LedgerCommand, ORIENTATION_REWARD, Reference},
    meta::Actor,
};
use bw_projections::models::tokens::{self, Balance, TokenLedger, Transaction, TransactionCursor};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    auth::HumanAuth,
    command::{CommandBody, CommandResponse, context_without_body},
    consistency::MinPosition,
    envelope::ApiOk,
    error::{ApiError, ErrorCode},
    state::Api,
};

use super::Fields;

/// The token routes.
pub fn routes() -> Router<crate::state::AppState> {
    Router::new()
        .route("/api/v1/tokens/balance", get(balance))
        .route("/api/v1/tokens/transactions", get(transactions))
        .route("/api/v1/tokens/spend", post(spend))
        .route(
            "/api/v1/tokens/orientation-reward",
            post(orientation_reward),
        )
}

/// Records `command` on `human_id`'s ledger.
async fn record(
    bus: &CommandBus,
    human_id: Uuid,
    command: LedgerCommand,
    ctx: &CommandContext,
    entry_id: Uuid,
    amount: i64,
    kind: EntryKind,
) -> Result<Outcome, ApiError> {
    Ok(bus
        .execute_serialized::<Ledger>(&human_id.to_string(), command, ctx, move |position| {
            StoredResponse {
                // No position: the same entry was recorded before (its key repeated).
                status: if position.is_some() { 201 } else { 200 },
                body: json!({
                    "transactionId": entry_id,
                    "amount": if kind.is_credit() { amount } else { -amount },
                    "transactionType": kind.as_str(),
                    "recorded": position.is_some(),
                }),
                position,
            }
        })
        .await?)
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens/balance",
    tag = "tokens",
    params(
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the ledger read model has applied this position (a Bw-Position)"
        )
    ),
    security(("human_token" = [])),
    responses(
        (status = 200, description = "The caller's balance", body = crate::schema::Ok<Balance>),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn balance(
    Api(platform): Api,
    caller: HumanAuth,
    min: MinPosition,
) -> Result<ApiOk<Balance>, ApiError> {
    min.wait(&platform, &TokenLedger).await?;
    Ok(ApiOk::new(
        tokens::balance(&platform.pool, caller.human_id).await?,
    ))
}

/// `GET /tokens/transactions` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct TransactionsParams {
    /// 1–100, default 20.
    limit: Option<String>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens/transactions",
    tag = "tokens",
    params(
        TransactionsParams,
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the ledger read model has applied this position"
        )
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "The caller's entries, newest first, each with the balance before and after it",
            body = crate::schema::Ok<Vec<Transaction>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn transactions(
    Api(platform): Api,
    caller: HumanAuth,
    min: MinPosition,
    Query(params): Query<TransactionsParams>,
) -> Result<ApiOk<Vec<Transaction>>, ApiError> {
    let mut f = Fields::default();
    let limit = super::page_limit(&mut f, params.limit.as_deref());
    f.finish()?;
    let cursor = super::cursor(params.cursor.as_deref(), TransactionCursor::decode)?;
    min.wait(&platform, &TokenLedger).await?;
    let (rows, next) = tokens::transactions(&platform.pool, caller.human_id, cursor, limit).await?;
    let meta = super::page_meta(next.map(TransactionCursor::encode), rows.len());
    Ok(ApiOk::new(rows).with_meta(meta))
}

/// `POST /tokens/spend`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpendRequest {
    /// Whole tokens, 1–1,000,000; at most the balance.
    amount: i64,
    /// `spend_vote`, `spend_circle`, `spend_analytics` or `spend_custom`.
    #[serde(rename = "type")]
    kind: String,
    /// With `referenceType`.
    reference_id: Option<Uuid>,
    /// `problem`, `solution`, `mission` or `circle`; with `referenceId`.
    reference_type: Option<String>,
    /// At most 500 characters.
    description: Option<String>,
    /// Names this spend for good (visible ASCII; up to 58 characters are kept as they are, longer
    /// keys are hashed): the same key never spends twice.
    /// Defaults to the `Idempotency-Key` header, else a new key.
    idempotency_key: Option<String>,
}

/// The entry key of a spend: `spend:` and the body's key, else the request's `Idempotency-Key`,
/// else a fresh id (hashed when too long). The prefix keeps clients out of the platform's keys
/// (`evidence-reward:…`, `peer-review-reward:…`, `orientation-…`): a client cannot take a reward's
/// key and block its payment.
fn spend_key(request: &SpendRequest, header: Option<&str>) -> String {
    let raw = request
        .idempotency_key
        .clone()
        .or_else(|| header.map(str::to_owned))
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    if raw.len() <= 58 {
        format!("spend:{raw}")
    } else {
        format!(
            "spend:{}",
            &hex::encode(Sha256::digest(raw.as_bytes()))[..58]
        )
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/spend",
    tag = "tokens",
    request_body = SpendRequest,
    params(
        (
            "Idempotency-Key" = Option<String>,
            Header,
            description = "Replays return the first response"
        )
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 201,
            description = "Spent; read the new balance with Bw-Min-Position",
            body = crate::schema::Ok<Object>
        ),
        (
            status = 200,
            description = "This entry's key was spent before; nothing more was taken",
            body = crate::schema::Ok<Object>
        ),
        (status = 403, description = "INSUFFICIENT_TOKENS", body = crate::schema::ErrorEnvelope),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn spend(
    Api(platform): Api,
    caller: HumanAuth,
    body: CommandBody<SpendRequest>,
) -> Result<CommandResponse, ApiError> {
    let request = &body.body;
    let mut f = Fields::default();
    let kind = match EntryKind::parse(&request.kind) {
        Some(kind) if !kind.is_credit() => Some(kind),
        _ => {
            f.error(
                "type",
                "must be spend_vote, spend_circle, spend_analytics or spend_custom",
            );
            None
        }
    };
    let reference = match (&request.reference_type, request.reference_id) {
        (None, None) => None,
        (Some(t), Some(id))
            if ["problem", "solution", "mission", "circle"].contains(&t.as_str()) =>
        {
            Some(Reference {
                reference_type: t.clone(),
                reference_id: id,
            })
        }
        (Some(_), Some(_)) => {
            f.error(
                "referenceType",
                "must be problem, solution, mission or circle",
            );
            None
        }
        _ => {
            f.error("referenceId", "referenceId and referenceType go together");
            None
        }
    };
    f.finish()?;
    let Some(kind) = kind else {
        return Err(ApiError::field("type", "missing"));
    };
    let entry = Entry {
        key: spend_key(request, body.idempotency_key()),
        amount: request.amount,
        kind,
        reference,
        description: request.description.clone(),
    };
    let human_id = caller.human_id;
    let entry_id = Entry::id(human_id, &entry.key);
    let ctx = body.context(Actor::Human(human_id));
    let outcome = record(
        &platform.bus,
        human_id,
        LedgerCommand::Debit {
            human_id,
            entry,
            at: Utc::now(),
        },
        &ctx,
        entry_id,
        request.amount,
        kind,
    )
    .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/orientation-reward",
    tag = "tokens",
    params(
        (
            "Idempotency-Key" = Option<String>,
            Header,
            description = "Replays return the first response"
        )
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 201,
            description = "10 tokens credited, once per person",
            body = crate::schema::Ok<Object>
        ),
        (
            status = 409,
            description = "REWARD_ALREADY_CLAIMED",
            body = crate::schema::ErrorEnvelope
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn orientation_reward(
    Api(platform): Api,
    caller: HumanAuth,
    headers: HeaderMap,
) -> Result<CommandResponse, ApiError> {
    let human_id = caller.human_id;
    let key = format!("orientation-{human_id}");
    let already = || {
        ApiError::refused(
            ErrorCode::RewardAlreadyClaimed,
            "the orientation reward is paid once per person",
        )
    };
    let ctx = context_without_body(
        &headers,
        "POST",
        "/api/v1/tokens/orientation-reward",
        Actor::Human(human_id),
    )?;
    let ledger: Ledger = platform.bus.load(&human_id.to_string()).await?;
    if ledger.has(&key) && ctx.idempotency.is_none() {
        return Err(already());
    }
    let entry_id = Entry::id(human_id, &key);
    let outcome = record(
        &platform.bus,
        human_id,
        LedgerCommand::Credit {
            human_id,
            entry: Entry {
                key,
                amount: ORIENTATION_REWARD,
                kind: EntryKind::EarnOrientation,
                reference: None,
                description: Some("Orientation completed".into()),
            },
            at: Utc::now(),
        },
        &ctx,
        entry_id,
        ORIENTATION_REWARD,
        EntryKind::EarnOrientation,
    )
    .await?;
    match &outcome {
        // Paid before, by another request (a replay of the paying request returns its response).
        Outcome::Executed { events, .. } if events.is_empty() => Err(already()),
        _ => Ok(CommandResponse(outcome.response().clone())),
    }
}

/// The OpenAPI paths of this module.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(balance, transactions, spend, orientation_reward))]
pub struct TokensApi;
