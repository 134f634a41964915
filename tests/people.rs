//! Humans, admins and auditors over HTTP against the real stack: registration, e-mail
//! verification, login with lockout, access and refresh tokens, profile, forgetting a person
//! (crypto-shredding, ADR 0003), and the admin decisions about agents.

mod support;

use bw_domain::taxonomy::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{
    LogCapture, Platform, field_error,
    people::{code_sent_to, login, person},
    send,
};

async fn register(p: &Platform, email: &str, password: &str, name: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(
        p.http
            .post(p.url("/human-auth/register"))
            .json(&json!({ "email": email, "password": password, "displayName": name })),
    )
    .await;
    (status, body)
}

async fn verify(p: &Platform, email: &str, code: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(
        p.http
            .post(p.url("/human-auth/verify-email"))
            .json(&json!({ "email": email, "verificationCode": code })),
    )
    .await;
    (status, body)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Asserts an error answer: its status and its code.
#[track_caller]
fn expect_error(status: StatusCode, body: &Value, want: StatusCode, want_code: &str) {
    assert_eq!((status, code(body)), (want, want_code), "{body}");
}

#[tokio::test]
async fn a_person_registers_verifies_the_code_and_logs_in() {
    let p = Platform::spawn().await;
    let email = "Amina.N@Example.org";
    let (status, body) = register(&p, email, "Kibera-water-2026", "Amina Njoroge").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["emailVerified"], false);

    // Not before the e-mail is verified.
    let (status, body) = login(&p, email, "Kibera-water-2026").await;
    expect_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");

    let sent = code_sent_to(&p, "Amina.N@example.org").await;
    let wrong = if sent == "000000" { "111111" } else { "000000" };
    let (status, body) = verify(&p, email, wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_error(&body, "verificationCode"),
        "does not match the code that was sent"
    );
    let (status, body) = verify(&p, email, "12ab56").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        field_error(&body, "verificationCode"),
        "must be exactly 6 digits"
    );
    let (status, body) = verify(&p, "nobody@example.org", &sent).await;
    assert_eq!(
        (status, field_error(&body, "verificationCode")),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "does not match the code that was sent"
        ),
        "an unknown address reads as a wrong code"
    );
    let (status, body) = verify(&p, email, &sent).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = verify(&p, email, &sent).await;
    expect_error(status, &body, StatusCode::CONFLICT, "CONFLICT");

    // The address is case-insensitive for login.
    let (status, body) = login(&p, "amina.n@example.org", "Kibera-water-2026").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["expiresIn"], 900);
    assert_eq!(body["data"]["role"], "human");
    let access = body["data"]["accessToken"].as_str().expect("access");
    assert_eq!(access.split('.').count(), 3, "a JWT");
    assert!(
        body["data"]["refreshToken"]
            .as_str()
            .is_some_and(|t| t.starts_with("bwr_"))
    );

    let (status, _, profile) = send(
        p.http
            .get(p.url("/profile"))
            .bearer_auth(access)
            .header("bw-min-position", "0"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
}

#[tokio::test]
async fn registration_checks_every_field_and_refuses_a_taken_address() {
    let p = Platform::spawn().await;
    let (status, body) = register(&p, "not-an-address", "short", "A").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for field in ["email", "password", "displayName"] {
        assert!(!field_error(&body, field).is_empty(), "{field}: {body}");
    }
    for (password, why) in [("alllowercase9", "upper-case"), ("NoDigitsHere", "digit")] {
        let (status, body) = register(&p, "policy@example.org", password, "Policy").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(field_error(&body, "password").contains(why), "{body}");
    }
    let (status, body) = register(&p, "taken@example.org", "Taken-pass-1", "First").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = register(&p, " TAKEN@example.org ", "Taken-pass-2", "Second").await;
    expect_error(status, &body, StatusCode::CONFLICT, "EMAIL_TAKEN");
    let humans: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'HumanRegistered'")
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("count");
    assert_eq!(humans, 1, "the refused registration appended nothing");

    // Anonymous commands need keys too long to guess.
    let (status, _, body) = send(
        p.http
            .post(p.url("/human-auth/register"))
            .header("idempotency-key", "1")
            .json(&json!({ "email": "short@example.org", "password": "Short-key-1", "displayName": "Short" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        field_error(&body, "Idempotency-Key").contains("at least 32"),
        "{body}"
    );
    // A replayed registration answers the same and registers nobody new.
    let request = || {
        p.http
            .post(p.url("/human-auth/register"))
            .header("idempotency-key", "6a1f1f7e-9d55-4d1c-9c38-registration")
            .json(&json!({ "email": "replay@example.org", "password": "Replay-pass-1", "displayName": "Replay" }))
    };
    let (first, _, a) = send(request()).await;
    let (second, _, b) = send(request()).await;
    assert_eq!((first, second), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(a["data"]["humanId"], b["data"]["humanId"]);
    let mails = bw_infra::notify::read_mailbox(&p.pipeline.pool, Some("replay@example.org"), 10)
        .await
        .expect("mailbox");
    assert_eq!(mails.len(), 1, "one code, not one per replay");
}

#[tokio::test]
async fn codes_expire_and_resending_is_limited_without_revealing_who_is_registered() {
    let p = Platform::spawn().await;
    let email = "resend@example.org";
    let (status, body) = register(&p, email, "Resend-pass-1", "Resend").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let first = code_sent_to(&p, email).await;
    sqlx::query("UPDATE human_verification_codes SET expires_at = now() - interval '1 second'")
        .execute(&p.pipeline.pool)
        .await
        .expect("age the code");
    let (status, body) = verify(&p, email, &first).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_error(&body, "verificationCode"),
        "has expired; ask for a new one"
    );
    let resend = |email: &'static str| {
        p.http
            .post(p.url("/human-auth/resend-code"))
            .json(&json!({ "email": email }))
    };
    for _ in 0..4 {
        let (status, _, body) = send(resend(email)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, _, unknown) = send(resend("nobody@example.org")).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the same answer for an unknown address"
    );
    assert_eq!(
        unknown["data"]["message"],
        json!("if this address belongs to an unverified account, a new code is on its way")
    );
    let sent = bw_infra::notify::read_mailbox(&p.pipeline.pool, Some(email), 10)
        .await
        .expect("mailbox");
    assert_eq!(
        sent.len(),
        3,
        "the first code and two resends: three an hour"
    );
    let none = bw_infra::notify::read_mailbox(&p.pipeline.pool, Some("nobody@example.org"), 10)
        .await
        .expect("mailbox");
    assert!(none.is_empty());
    let latest = code_sent_to(&p, email).await;
    let (status, body) = verify(&p, email, &latest).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn five_failed_logins_lock_the_account_for_fifteen_minutes_even_when_they_race() {
    let p = Platform::spawn().await;
    let amina = person(&p, "lockout", Role::Human).await;
    let (status, body) = login(&p, "nobody@example.org", "Whatever-1").await;
    expect_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let (status, body) = login(&p, &amina.email, "not-the-password").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("the e-mail or password is wrong")
        ),
        "the same answer as for an unknown address"
    );
    // 19 more wrong attempts at once (20 in all): only 5 may ever be checked.
    let attempts = (0..19).map(|_| {
        p.http
            .post(p.url("/human-auth/login"))
            .json(&json!({ "email": amina.email, "password": "guess-Guess-1" }))
            .send()
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("send").status())
        .collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(checked, 4, "the first failure plus four more: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS)
    );
    let response = p
        .http
        .post(p.url("/human-auth/login"))
        .json(&json!({ "email": amina.email, "password": amina.password }))
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "locked, even with the password"
    );
    let wait: i64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((880..=900).contains(&wait), "{wait}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(code(&body), "RATE_LIMITED");

    sqlx::query("UPDATE human_credentials SET locked_until = now() - interval '1 second'")
        .execute(&p.pipeline.pool)
        .await
        .expect("let the lock pass");
    let (status, body) = login(&p, &amina.email, &amina.password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn refresh(p: &Platform, token: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(
        p.http
            .post(p.url("/human-auth/refresh"))
            .json(&json!({ "refreshToken": token })),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_its_whole_family() {
    let p = Platform::spawn().await;
    let amina = person(&p, "rotating", Role::Human).await;
    let (status, body) = refresh(&p, &amina.refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["data"]["refreshToken"]
        .as_str()
        .expect("next")
        .to_owned();
    assert_ne!(second, amina.refresh);
    let access = body["data"]["accessToken"]
        .as_str()
        .expect("access")
        .to_owned();
    let (status, _, me) = send(
        p.http
            .get(p.url("/profile"))
            .bearer_auth(&access)
            .header("bw-min-position", amina.position),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the refreshed access token works: {me}"
    );

    // Another login is another family, untouched by what follows.
    let (_, other_login) = login(&p, &amina.email, &amina.password).await;
    let other = other_login["data"]["refreshToken"]
        .as_str()
        .expect("other")
        .to_owned();

    // The first token again: someone kept a copy. Its family ends, the newer token included.
    let (status, body) = refresh(&p, &amina.refresh).await;
    expect_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let (status, _) = refresh(&p, &second).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the family is revoked");
    let (status, body) = refresh(&p, &other).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another login is unaffected: {body}"
    );

    let (status, body) = refresh(&p, "bwr_made-up").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (plain, hashed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE token_sha256 = convert_to($1, 'UTF8')),
                count(*) FILTER (WHERE token_sha256 = sha256(convert_to($1, 'UTF8')))
         FROM refresh_tokens",
    )
    .bind(&amina.refresh)
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("count");
    assert_eq!((plain, hashed), (0, 1), "tokens are stored as SHA-256 only");

    // Expired.
    let (_, fresh) = login(&p, &amina.email, &amina.password).await;
    let fresh = fresh["data"]["refreshToken"]
        .as_str()
        .expect("fresh")
        .to_owned();
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE used_at IS NULL AND revoked_at IS NULL")
        .execute(&p.pipeline.pool)
        .await
        .expect("age");
    let (status, body) = refresh(&p, &fresh).await;
    expect_error(status, &body, StatusCode::UNAUTHORIZED, "TOKEN_EXPIRED");
}

#[tokio::test]
async fn logout_ends_one_session_or_all_of_them() {
    let p = Platform::spawn().await;
    let amina = person(&p, "leaving", Role::Human).await;
    let (_, second) = login(&p, &amina.email, &amina.password).await;
    let second = second["data"]["refreshToken"]
        .as_str()
        .expect("second")
        .to_owned();
    let (status, _, body) = send(
        p.http
            .post(p.url("/human-auth/logout"))
            .bearer_auth(&amina.access)
            .json(&json!({ "refreshToken": amina.refresh })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["revokedTokens"], 1);
    assert_eq!(
        refresh(&p, &amina.refresh).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = refresh(&p, &second).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send(
        p.http
            .post(p.url("/human-auth/logout"))
            .bearer_auth(&amina.access),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["revokedTokens"].as_u64() >= Some(1), "{body}");
    let remaining: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE human_id = $1::uuid AND revoked_at IS NULL",
    )
    .bind(&amina.id)
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("count");
    assert_eq!(remaining, 0, "every session of the person ended");
}

#[tokio::test]
async fn access_tokens_expire_and_survive_a_key_rotation_made_by_another_instance() {
    let p = Platform::spawn().await;
    let amina = person(&p, "rotation", Role::Human).await;
    let keys = bw_infra::crypto::keyring::Keyring::load(p.pipeline.pool.clone())
        .await
        .expect("keys");
    let now = chrono::Utc::now();
    let claims = |exp: chrono::DateTime<chrono::Utc>| bw_infra::crypto::jwt::Claims {
        sub: amina.id.clone(),
        role: "human".into(),
        iat: now.timestamp(),
        exp: exp.timestamp(),
        jti: "test".into(),
    };
    let expired = keys
        .issue(&claims(now - chrono::TimeDelta::seconds(1)))
        .await;
    let (status, _, body) = send(p.http.get(p.url("/profile")).bearer_auth(&expired)).await;
    expect_error(status, &body, StatusCode::UNAUTHORIZED, "TOKEN_EXPIRED");
    let mut tampered = amina.access.clone();
    tampered.pop();
    tampered.push(if amina.access.ends_with('A') {
        'B'
    } else {
        'A'
    });
    let (status, _, body) = send(p.http.get(p.url("/profile")).bearer_auth(&tampered)).await;
    expect_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    // Another instance rotates and signs with the new key; this gateway has never seen it.
    bw_infra::crypto::keyring::rotate(&p.pipeline.pool)
        .await
        .expect("rotate");
    let other_instance = bw_infra::crypto::keyring::Keyring::load(p.pipeline.pool.clone())
        .await
        .expect("keys");
    let fresh = other_instance
        .issue(&claims(now + chrono::TimeDelta::minutes(15)))
        .await;
    assert_ne!(
        fresh.split('.').next(),
        amina.access.split('.').next(),
        "a new key id"
    );
    for token in [&fresh, &amina.access] {
        let (status, _, body) = send(
            p.http
                .get(p.url("/profile"))
                .bearer_auth(token)
                .header("bw-min-position", amina.position),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "new key and old key in its grace period: {body}"
        );
    }
}

#[tokio::test]
async fn a_profile_is_kept_sealed_in_the_log_and_opened_for_its_owner() {
    let logs = LogCapture::global();
    let p = Platform::spawn().await;
    let amina = person(&p, "sealed", Role::Human).await;
    let bio = "Retired nurse in Kibera, happy to help with water testing on weekends";
    let (status, headers, body) = send(
        p.http
            .patch(p.url("/profile"))
            .bearer_auth(&amina.access)
            .json(&json!({
                "displayName": "Amina Wanjiru",
                "skills": ["first aid", "water testing"],
                "languages": ["sw", "en"],
                "city": "Nairobi", "country": "Kenya",
                "location": { "latitude": -1.31337, "longitude": 36.78701 },
                "serviceRadius": 15,
                "bio": bio
            })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = headers["bw-position"]
        .to_str()
        .expect("position")
        .to_owned();
    let (status, _, profile) = send(
        p.http
            .get(p.url("/profile"))
            .bearer_auth(&amina.access)
            .header("bw-min-position", &at),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    let data = &profile["data"];
    assert_eq!(data["email"], amina.email.as_str());
    assert_eq!(data["displayName"], "Amina Wanjiru");
    assert_eq!(data["bio"], bio);
    assert_eq!(
        data["location"],
        json!({ "latitude": -1.31337, "longitude": 36.78701 })
    );
    assert_eq!(data["serviceRadiusKm"], 15);
    assert_eq!(data["languages"], json!(["sw", "en"]));
    assert_eq!(data["forgotten"], false);

    // Nothing personal in plaintext: not in the events, not in the read model, not in the logs.
    let events: String = sqlx::query_scalar(
        "SELECT string_agg(payload::text || metadata::text, ' ') FROM events WHERE aggregate_type = 'Human'",
    )
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("events");
    let read_model: String = sqlx::query_scalar(
        "SELECT row_to_json(h)::text FROM rm_humans h WHERE human_id = $1::uuid",
    )
    .bind(&amina.id)
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("row");
    let log = logs.text();
    for secret in [
        amina.email.as_str(),
        amina.password.as_str(),
        "Amina Wanjiru",
        "Person sealed",
        "Retired nurse",
        "1.31337",
        "36.78701",
    ] {
        assert!(
            !events.contains(secret),
            "`{secret}` is in the events: {events}"
        );
        assert!(
            !read_model.contains(secret),
            "`{secret}` is in the read model"
        );
        assert!(!log.contains(secret), "`{secret}` reached the log");
    }
    assert!(events.contains(r#""sealed": "v1""#) || events.contains(r#""sealed":"v1""#));

    // Limits of §1.3, all reported at once where they are parsed at the edge.
    let (status, _, body) = send(
        p.http
            .patch(p.url("/profile"))
            .bearer_auth(&amina.access)
            .json(&json!({
                "displayName": "A",
                "location": { "latitude": 91.0, "longitude": 0.0 },
                "bio": "x".repeat(501)
            })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for field in ["displayName", "latitude", "bio"] {
        assert!(!field_error(&body, field).is_empty(), "{field}: {body}");
    }
    for (changes, field) in [
        (json!({ "serviceRadius": 70 }), "serviceRadius"),
        (json!({ "languages": ["swa"] }), "languages"),
        (json!({ "skills": [] }), "skills"),
        (json!({}), "body"),
    ] {
        let (status, _, body) = send(
            p.http
                .patch(p.url("/profile"))
                .bearer_auth(&amina.access)
                .json(&changes),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{changes}: {body}"
        );
        assert!(!field_error(&body, field).is_empty(), "{field}: {body}");
    }
}

#[tokio::test]
async fn a_forgotten_person_is_unreadable_everywhere_while_the_log_stays_intact() {
    let p = Platform::spawn().await;
    let amina = person(&p, "forgetme", Role::Human).await;
    let (status, headers, body) = send(
        p.http
            .patch(p.url("/profile"))
            .bearer_auth(&amina.access)
            .json(&json!({ "bio": "Call me on weekends", "location": { "latitude": 1.5, "longitude": 2.5 }, "city": "Mombasa" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = headers["bw-position"]
        .to_str()
        .expect("position")
        .to_owned();
    let sealed_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(&amina.id)
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("count");

    let (status, headers, body) = send(
        p.http
            .delete(p.url("/profile"))
            .bearer_auth(&amina.access)
            .header("idempotency-key", "forget-me-once"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = headers["bw-position"]
        .to_str()
        .expect("position")
        .to_owned();
    assert!(at.parse::<i64>().expect("n") > before.parse::<i64>().expect("n"));

    // The access token is still within its 15 minutes; what it reads is forgotten.
    let (status, _, profile) = send(
        p.http
            .get(p.url("/profile"))
            .bearer_auth(&amina.access)
            .header("bw-min-position", &at),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    let data = &profile["data"];
    assert_eq!(data["forgotten"], true);
    assert_eq!(data["email"], "[forgotten]");
    assert_eq!(data["displayName"], "[forgotten]");
    assert_eq!(
        (
            data["bio"].is_null(),
            data["location"].is_null(),
            data["city"].is_null()
        ),
        (true, true, true)
    );

    let (status, _, body) = send(
        p.http
            .patch(p.url("/profile"))
            .bearer_auth(&amina.access)
            .json(&json!({ "city": "Nairobi" })),
    )
    .await;
    expect_error(status, &body, StatusCode::GONE, "GONE");
    assert_eq!(
        login(&p, &amina.email, &amina.password).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&p, &amina.refresh).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The log is intact: every event is still there, its chain verifies, its ciphertext stays
    // closed for good.
    let events = support::verify_chain(&p.pipeline.pool, &amina.id).await;
    assert_eq!(
        i64::try_from(events).expect("small"),
        sealed_before + 1,
        "only HumanForgotten was added"
    );
    let key: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT key FROM person_keys WHERE person_id = $1::uuid")
            .bind(&amina.id)
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("key row");
    assert!(key.is_none(), "the key is destroyed");

    // The same request again replays; forgetting again is refused.
    let (status, _, _) = send(
        p.http
            .delete(p.url("/profile"))
            .bearer_auth(&amina.access)
            .header("idempotency-key", "forget-me-once"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a replay");
    let (status, _, body) = send(p.http.delete(p.url("/profile")).bearer_auth(&amina.access)).await;
    expect_error(status, &body, StatusCode::CONFLICT, "CONFLICT");

    // The address is free again.
    let (status, body) = register(&p, &amina.email, "Come-back-2027", "Amina Again").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn an_admin_forgets_a_person_and_only_an_admin_may() {
    let p = Platform::spawn().await;
    let admin = person(&p, "forgetting_admin", Role::Admin).await;
    let auditor = person(&p, "watching_auditor", Role::Auditor).await;
    let amina = person(&p, "forgotten_by_admin", Role::Human).await;
    let forget = |token: &str, id: &str| {
        p.http
            .delete(p.url(&format!("/admin/humans/{id}")))
            .bearer_auth(token.to_owned())
    };
    let (status, _, body) = send(forget(&auditor.access, &amina.id)).await;
    expect_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, _, body) = send(forget(&admin.access, &uuid::Uuid::now_v7().to_string())).await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, _, body) = send(forget(&admin.access, &amina.id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let by: String = sqlx::query_scalar(
        "SELECT payload->'data'->>'forgottenBy' FROM events WHERE aggregate_id = $1 AND event_type = 'HumanForgotten'",
    )
    .bind(&amina.id)
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("event");
    assert_eq!(
        by,
        format!("human:{}", admin.id),
        "the decision names its admin"
    );
    assert_eq!(
        login(&p, &amina.email, &amina.password).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, body) = send(forget(&admin.access, &amina.id)).await;
    expect_error(status, &body, StatusCode::CONFLICT, "CONFLICT");

    // A forgotten admin loses the role at once, though the access token has minutes left.
    let other_admin = person(&p, "forgotten_admin", Role::Admin).await;
    let (status, _, body) = send(forget(&admin.access, &other_admin.id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = send(
        p.http
            .get(p.url("/admin/flagged"))
            .bearer_auth(&other_admin.access),
    )
    .await;
    expect_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

#[tokio::test]
async fn admins_set_an_agents_verification_and_rate_limit_which_the_limiter_applies() {
    let p = Platform::spawn_rate_limited().await;
    let admin = person(&p, "limits_admin", Role::Admin).await;
    let human = person(&p, "limits_human", Role::Human).await;
    let (status, _, body) = send(p.http.post(p.url("/auth/agents/register")).json(&json!({
        "username": "limited_agent", "framework": "custom", "specializations": ["food_security"]
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let agent_id = body["data"]["agentId"].as_str().expect("id").to_owned();
    let key = body["data"]["apiKey"].as_str().expect("key").to_owned();

    // Humans and admins count per person, with their role's limit.
    for (token, limit) in [(&human.access, "120"), (&admin.access, "300")] {
        let response = p
            .http
            .get(p.url("/profile"))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        assert_eq!(response.headers()["x-ratelimit-limit"], limit);
    }

    let admin_request = |method: reqwest::Method, path: &str, body: Value| {
        p.http
            .request(method, p.url(&format!("/admin/agents/{agent_id}/{path}")))
            .bearer_auth(&admin.access)
            .json(&body)
    };
    let (status, _, body) = send(admin_request(
        reqwest::Method::PATCH,
        "verification",
        json!({ "claimStatus": "claimed" }),
    ))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        field_error(&body, "claimStatus").contains("pending, verified"),
        "{body}"
    );
    let (status, _, body) = send(admin_request(
        reqwest::Method::PATCH,
        "verification",
        json!({ "claimStatus": "pending" }),
    ))
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "CONFLICT"),
        "already pending: {body}"
    );
    let (status, _, body) = send(
        p.http
            .patch(p.url(&format!(
                "/admin/agents/{}/verification",
                uuid::Uuid::now_v7()
            )))
            .bearer_auth(&admin.access)
            .json(&json!({ "claimStatus": "verified" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, headers, body) = send(admin_request(
        reqwest::Method::PATCH,
        "verification",
        json!({ "claimStatus": "verified" }),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let verified_at = headers["bw-position"]
        .to_str()
        .expect("position")
        .to_owned();
    let (_, _, directory) = send(
        p.http
            .get(p.url(&format!("/agents/{agent_id}")))
            .header("bw-min-position", &verified_at),
    )
    .await;
    assert_eq!(directory["data"]["claimStatus"], "verified", "{directory}");

    for bad in [
        json!({ "limit": 0 }),
        json!({ "limit": 1001 }),
        json!({ "limit": "many" }),
        json!({}),
    ] {
        let (status, _, body) = send(admin_request(
            reqwest::Method::PUT,
            "rate-limit",
            bad.clone(),
        ))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, headers, body) = send(admin_request(
        reqwest::Method::PUT,
        "rate-limit",
        json!({ "limit": 2 }),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["limitPerMinute"], 2);
    let set_at = headers["bw-position"]
        .to_str()
        .expect("position")
        .to_owned();
    let (_, _, _) = send(
        p.http
            .get(p.url(&format!("/agents/{agent_id}")))
            .header("bw-min-position", &set_at),
    )
    .await;
    // The agent's first request looks its tier up: the override wins over the verified tier.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = p
            .http
            .get(p.url("/agents/me"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send");
        statuses.push((
            response.status(),
            response.headers().get("x-ratelimit-limit").cloned(),
        ));
    }
    assert_eq!(
        statuses[0].1.as_ref().map(|v| v.to_str().expect("ascii")),
        Some("2")
    );
    assert_eq!(
        statuses.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let (status, _, body) = send(admin_request(
        reqwest::Method::PUT,
        "rate-limit",
        json!({ "limit": null }),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["limitPerMinute"], Value::Null);
    let (status, _, body) = send(admin_request(
        reqwest::Method::PUT,
        "rate-limit",
        json!({ "limit": null }),
    ))
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "CONFLICT"),
        "no override to remove: {body}"
    );
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&agent_id)
    .fetch_all(&p.pipeline.pool)
    .await
    .expect("events");
    assert_eq!(
        kinds,
        [
            "AgentRegistered",
            "AgentClaimStatusSet",
            "AgentRateLimitSet",
            "AgentRateLimitSet"
        ]
    );
}

#[tokio::test]
async fn five_wrong_guesses_void_a_code_and_a_new_one_must_be_asked_for() {
    let p = Platform::spawn().await;
    let email = "guessed@example.org";
    let (status, body) = register(&p, email, "Guessed-pass-1", "Guessed").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sent = code_sent_to(&p, email).await;
    let wrong = if sent == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let (status, _) = verify(&p, email, wrong).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, body) = verify(&p, email, &sent).await;
    expect_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ask for one")),
        "{body}"
    );
    let (status, _, _) = send(
        p.http
            .post(p.url("/human-auth/resend-code"))
            .json(&json!({ "email": email })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let fresh = code_sent_to(&p, email).await;
    let (status, body) = verify(&p, email, &fresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
