//! People in tests: accounts created as the CLI creates them, logged in over HTTP; codes read
//! from the development mailbox.

use bw_domain::taxonomy::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Platform, send};

/// The e-mail fingerprint secret of [`Platform`].
pub const EMAIL_SECRET: &[u8] = b"test e-mail fingerprint secret";

/// A logged-in person.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
    /// The position of the account's last event.
    pub position: i64,
}

/// Creates a verified account with `role` (as `betterworld admin create` does) and logs it in.
pub async fn person(p: &Platform, name: &str, role: Role) -> Person {
    let email = format!("{name}@people.example.org");
    let password = format!("Pass-{name}-2026");
    let id = betterworld::admin::create_account(
        &p.pipeline.bus,
        EMAIL_SECRET,
        &email,
        &password,
        &format!("Person {name}"),
        role,
    )
    .await
    .expect("account");
    let position: i64 =
        sqlx::query_scalar("SELECT max(global_position) FROM events WHERE aggregate_id = $1")
            .bind(id.to_string())
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("position");
    let (status, body) = login(p, &email, &password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Person {
        id: id.to_string(),
        email,
        password,
        access: body["data"]["accessToken"]
            .as_str()
            .expect("access")
            .to_owned(),
        refresh: body["data"]["refreshToken"]
            .as_str()
            .expect("refresh")
            .to_owned(),
        position,
    }
}

/// `POST /human-auth/login`.
pub async fn login(p: &Platform, email: &str, password: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(
        p.http
            .post(p.url("/human-auth/login"))
            .json(&json!({ "email": email, "password": password })),
    )
    .await;
    (status, body)
}

/// The newest 6-digit code sent to `email`.
pub async fn code_sent_to(p: &Platform, email: &str) -> String {
    let messages = bw_infra::notify::read_mailbox(&p.pipeline.pool, Some(email), 1)
        .await
        .expect("mailbox");
    let message = messages.first().expect("a message was sent");
    let code: String = message
        .body
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    assert_eq!(code.len(), 6, "{}", message.body);
    code
}
