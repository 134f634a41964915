//! ImpactTokens over HTTP against the real stack: the orientation reward, spending, balances and
//! entries with their before/after balances, concurrent spends, repeated entries, and
//! `ledger verify` finding a read model that disagrees with the log.

mod support;

use bw_commands::CommandContext;
use bw_domain::{
    ledger::{Entry, EntryKind, Ledger, LedgerCommand},
    meta::Actor,
    taxonomy::Role,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{
    Platform, field_error,
    people::{Person, person},
    send,
};
use uuid::Uuid;

fn position(headers: &reqwest::header::HeaderMap) -> i64 {
    headers["bw-position"]
        .to_str()
        .expect("text")
        .parse()
        .expect("a position")
}

async fn orientation(
    p: &Platform,
    who: &Person,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send(
        p.http
            .post(p.url("/tokens/orientation-reward"))
            .bearer_auth(&who.access),
    )
    .await
}

async fn spend(
    p: &Platform,
    who: &Person,
    body: &Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send(
        p.http
            .post(p.url("/tokens/spend"))
            .bearer_auth(&who.access)
            .json(body),
    )
    .await
}

async fn balance(p: &Platform, who: &Person, at: i64) -> Value {
    let (status, _, body) = send(
        p.http
            .get(p.url("/tokens/balance"))
            .bearer_auth(&who.access)
            .header("bw-min-position", at),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

/// Credits `amount` straight through the command bus, as a reward saga does.
async fn credit(p: &Platform, who: &Person, key: &str, amount: i64) -> Option<i64> {
    let human_id: Uuid = who.id.parse().expect("id");
    let outcome = p
        .pipeline
        .bus
        .execute_serialized::<Ledger>(
            &who.id,
            LedgerCommand::Credit {
                human_id,
                entry: Entry {
                    key: key.to_owned(),
                    amount,
                    kind: EntryKind::EarnPeerReview,
                    reference: None,
                    description: None,
                },
                at: chrono::Utc::now(),
            },
            &CommandContext {
                actor: Actor::System,
                correlation_id: "tokens-test".into(),
                causation_id: None,
                traceparent: None,
                idempotency: None,
            },
            |position| bw_commands::idempotency::StoredResponse {
                status: 201,
                body: json!({}),
                position,
            },
        )
        .await
        .expect("credited");
    outcome.response().position
}

#[tokio::test]
async fn the_orientation_reward_pays_ten_once_and_shows_in_balance_and_transactions() {
    let p = Platform::spawn().await;
    let ana = person(&p, "tokens_ana", Role::Human).await;

    let (status, headers, body) = orientation(&p, &ana).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["amount"], 10);
    assert_eq!(body["data"]["transactionType"], "earn_orientation");
    let at = position(&headers);
    assert_eq!(
        balance(&p, &ana, at).await,
        json!({ "balance": 10, "totalEarned": 10, "totalSpent": 0 })
    );

    let (status, _, body) = orientation(&p, &ana).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "REWARD_ALREADY_CLAIMED");

    let (status, _, body) = send(
        p.http
            .get(p.url("/tokens/transactions"))
            .bearer_auth(&ana.access)
            .header("bw-min-position", at),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = body["data"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "paid once: {body}");
    assert_eq!(entries[0]["amount"], 10);
    assert_eq!(entries[0]["balanceBefore"], 0);
    assert_eq!(entries[0]["balanceAfter"], 10);
    assert_eq!(
        entries[0]["idempotencyKey"],
        format!("orientation-{}", ana.id)
    );

    // Another person starts from nothing.
    let ben = person(&p, "tokens_ben", Role::Human).await;
    assert_eq!(
        balance(&p, &ben, at).await,
        json!({ "balance": 0, "totalEarned": 0, "totalSpent": 0 })
    );
}

#[tokio::test]
async fn spending_takes_from_the_balance_refuses_an_overdraft_and_never_spends_a_key_twice() {
    let p = Platform::spawn().await;
    let ana = person(&p, "spender_ana", Role::Human).await;
    orientation(&p, &ana).await;

    let problem = Uuid::now_v7();
    let (status, headers, body) = spend(
        &p,
        &ana,
        &json!({ "amount": 4, "type": "spend_vote", "referenceType": "problem", "referenceId": problem, "description": "Vote for the well" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["amount"], -4);
    let at = position(&headers);

    // More than is left: refused, nothing taken.
    let (status, _, body) = spend(&p, &ana, &json!({ "amount": 7, "type": "spend_custom" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "INSUFFICIENT_TOKENS");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("6")),
        "says what is left: {body}"
    );

    // One entry key spends once, however often it is sent.
    let keyed =
        json!({ "amount": 2, "type": "spend_analytics", "idempotencyKey": "report-2026-11" });
    let (status, headers, first) = spend(&p, &ana, &keyed).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let at = at.max(position(&headers));
    let (status, _, again) = spend(&p, &ana, &keyed).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["recorded"], false);
    assert_eq!(
        again["data"]["transactionId"],
        first["data"]["transactionId"]
    );
    // …and an Idempotency-Key replay answers as the first time.
    let replayed = || {
        p.http
            .post(p.url("/tokens/spend"))
            .bearer_auth(&ana.access)
            .header("idempotency-key", "spend-once")
            .json(&json!({ "amount": 1, "type": "spend_vote" }))
    };
    let (status, headers, first) = send(replayed()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let at = at.max(position(&headers));
    let (status, _, second) = send(replayed()).await;
    assert_eq!(
        (status, &second["data"]),
        (StatusCode::CREATED, &first["data"])
    );

    assert_eq!(
        balance(&p, &ana, at).await,
        json!({ "balance": 3, "totalEarned": 10, "totalSpent": 7 })
    );

    // Entries newest first, each with the balance it started from and left.
    let (status, _, page) = send(
        p.http
            .get(p.url("/tokens/transactions?limit=2"))
            .bearer_auth(&ana.access)
            .header("bw-min-position", at),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let chain: Vec<(i64, i64, i64)> = page["data"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["amount"].as_i64().expect("amount"),
                e["balanceBefore"].as_i64().expect("before"),
                e["balanceAfter"].as_i64().expect("after"),
            )
        })
        .collect();
    assert_eq!(chain, vec![(-1, 4, 3), (-2, 6, 4)]);
    assert_eq!(page["meta"]["hasMore"], true);
    let cursor = page["meta"]["nextCursor"].as_str().expect("cursor");
    let (status, _, rest) = send(
        p.http
            .get(p.url(&format!("/tokens/transactions?limit=2&cursor={cursor}")))
            .bearer_auth(&ana.access),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    let rest = rest["data"].as_array().expect("entries");
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0]["referenceType"], "problem");
    assert_eq!(rest[0]["referenceId"], json!(problem));
    assert_eq!(rest[1]["transactionType"], "earn_orientation");

    let (status, _, body) = send(
        p.http
            .get(p.url("/tokens/transactions?cursor=not-ours"))
            .bearer_auth(&ana.access),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_CURSOR");
}

#[tokio::test]
async fn a_spend_that_does_not_parse_is_refused_field_by_field() {
    let p = Platform::spawn().await;
    let ana = person(&p, "invalid_ana", Role::Human).await;
    orientation(&p, &ana).await;
    for (body, field) in [
        (json!({ "amount": 1, "type": "earn_orientation" }), "type"),
        (json!({ "amount": 1, "type": "spend_everything" }), "type"),
        (json!({ "amount": 0, "type": "spend_vote" }), "amount"),
        (json!({ "amount": -3, "type": "spend_vote" }), "amount"),
        (
            json!({ "amount": 1, "type": "spend_vote", "referenceType": "problem" }),
            "referenceId",
        ),
        (
            json!({ "amount": 1, "type": "spend_vote", "referenceType": "planet", "referenceId": Uuid::now_v7() }),
            "referenceType",
        ),
        (
            json!({ "amount": 1, "type": "spend_vote", "description": "d".repeat(501) }),
            "description",
        ),
        (
            json!({ "amount": 1, "type": "spend_vote", "idempotencyKey": "has a space" }),
            "idempotencyKey",
        ),
    ] {
        let (status, _, answer) = spend(&p, &ana, &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} → {answer}"
        );
        assert!(!field_error(&answer, field).is_empty(), "{body} → {answer}");
    }
    let (status, _, answer) = spend(
        &p,
        &ana,
        &json!({ "amount": 1, "type": "spend_vote", "tip": 5 }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_spends_never_take_the_balance_below_zero() {
    let p = Platform::spawn().await;
    let ana = person(&p, "concurrent_ana", Role::Human).await;
    credit(&p, &ana, "peer-review-reward:seed", 25).await;

    // 50 spends of 2 tokens race for 25: exactly 12 fit.
    let spends = (0..50).map(|n| {
        let p = &p;
        let ana = &ana;
        async move {
            spend(p, ana, &json!({ "amount": 2, "type": "spend_vote", "idempotencyKey": format!("race-{n}") })).await
        }
    });
    let answers = futures::future::join_all(spends).await;
    let mut at = 0;
    let mut counts = std::collections::BTreeMap::new();
    for (status, headers, body) in &answers {
        *counts.entry(status.as_u16()).or_insert(0) += 1;
        match *status {
            StatusCode::CREATED => at = at.max(position(headers)),
            StatusCode::FORBIDDEN => assert_eq!(body["error"]["code"], "INSUFFICIENT_TOKENS"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(counts.get(&201), Some(&12), "{counts:?}");
    assert_eq!(counts.get(&403), Some(&38), "{counts:?}");
    assert_eq!(
        balance(&p, &ana, at).await,
        json!({ "balance": 1, "totalEarned": 25, "totalSpent": 24 })
    );
    let lowest: Option<i64> = sqlx::query_scalar(
        "SELECT min(balance_after) FROM rm_token_transactions WHERE human_id = $1",
    )
    .bind(ana.id.parse::<Uuid>().expect("id"))
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("lowest");
    assert_eq!(lowest, Some(1));
    let report = bw_projections::models::tokens::verify(&p.pipeline.pool)
        .await
        .expect("verify");
    assert!(report.discrepancies.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_reward_credited_again_under_the_same_key_pays_once() {
    let p = Platform::spawn().await;
    let ana = person(&p, "rewarded_ana", Role::Human).await;
    // A saga redelivered: the same deterministic entry key arrives twice (and concurrently).
    let (first, second) = tokio::join!(
        credit(
            &p,
            &ana,
            "evidence-reward:0195d0b4-0000-7000-8000-000000000001",
            40
        ),
        credit(
            &p,
            &ana,
            "evidence-reward:0195d0b4-0000-7000-8000-000000000001",
            40
        ),
    );
    let third = credit(
        &p,
        &ana,
        "evidence-reward:0195d0b4-0000-7000-8000-000000000001",
        40,
    )
    .await;
    let paid: Vec<i64> = [first, second, third].into_iter().flatten().collect();
    assert_eq!(
        paid.len(),
        1,
        "one of the three recorded an entry: {paid:?}"
    );
    assert_eq!(
        balance(&p, &ana, paid[0]).await,
        json!({ "balance": 40, "totalEarned": 40, "totalSpent": 0 })
    );
    let entries: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Ledger' AND aggregate_id = $1",
    )
    .bind(&ana.id)
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("count");
    assert_eq!(entries, 1);
}

#[tokio::test]
async fn ledger_verify_names_every_balance_the_read_model_gets_wrong() {
    let p = Platform::spawn().await;
    let ana = person(&p, "audited_ana", Role::Human).await;
    let ben = person(&p, "audited_ben", Role::Human).await;
    credit(&p, &ana, "a", 10).await;
    let last = credit(&p, &ben, "b", 7).await.expect("recorded");
    balance(&p, &ben, last).await;
    let verify = || bw_projections::models::tokens::verify(&p.pipeline.pool);

    let clean = verify().await.expect("verify");
    assert_eq!((clean.people, clean.entries), (2, 2));
    assert!(clean.discrepancies.is_empty(), "{clean:?}");

    // Someone edits a balance (keeping the row's own arithmetic consistent) and deletes an entry.
    sqlx::query("UPDATE rm_token_balances SET balance = balance + 5, total_earned = total_earned + 5 WHERE human_id = $1")
        .bind(ana.id.parse::<Uuid>().expect("id"))
        .execute(&p.pipeline.pool)
        .await
        .expect("tamper");
    sqlx::query("DELETE FROM rm_token_transactions WHERE human_id = $1")
        .bind(ben.id.parse::<Uuid>().expect("id"))
        .execute(&p.pipeline.pool)
        .await
        .expect("tamper");
    let report = verify().await.expect("verify");
    let about = |who: &Person| -> Vec<String> {
        report
            .discrepancies
            .iter()
            .filter(|d| d.human_id.to_string() == who.id)
            .map(|d| d.problem.clone())
            .collect()
    };
    let ana_problems = about(&ana);
    assert!(
        ana_problems
            .iter()
            .any(|m| m.starts_with("balance: the read model says 15, the log gives 10")),
        "{ana_problems:?}"
    );
    let ben_problems = about(&ben);
    assert!(
        ben_problems
            .iter()
            .any(|m| m.starts_with("sum of transactions")),
        "{ben_problems:?}"
    );
    assert!(
        ben_problems
            .iter()
            .any(|m| m.starts_with("number of transactions")),
        "{ben_problems:?}"
    );
}
