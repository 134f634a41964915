//! The original plan's evidence scenario (§8.2 #4): ten concurrent 5 MB image uploads, each done
//! within 5 s.
//!
//! Everything it needs is set up through the platform's own paths, as people would: an agent reports
//! a problem, proposes a solution and creates a mission from it, each judged by the guardrail (what
//! the guardrail flags, an admin made with `betterworld admin create` approves through the review
//! queue); humans register, verify their address with the code the development mailbox received, log
//! in and claim the mission. Then they upload at once.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    Db, Env, data,
    stack::Stack,
    stats::{Row, Samples},
    targets::register_agent,
};

/// The plan's file size and the people uploading at once.
const FILE_BYTES: usize = 5 * 1024 * 1024;
const UPLOADERS: usize = 10;
/// How long the guardrail may take with one item of the set-up (it may have a backlog of the
/// scenarios before).
const VERDICT_WITHIN: Duration = Duration::from_secs(300);

/// The scenario's row: one latency per upload, from the request's start to its `201`.
pub async fn uploads(env: &Env, db: &Db, stack: &Stack) -> anyhow::Result<Row> {
    let uploaders = if env.plan.quick { 3 } else { UPLOADERS };
    let site = Site::new(env, db, stack);
    let admin = site.admin().await?;
    let mission = site.mission(&admin, uploaders).await?;
    let mut people = Vec::with_capacity(uploaders);
    for _ in 0..uploaders {
        let person = site
            .human(&Uuid::new_v4().simple().to_string()[..12])
            .await?;
        site.send(
            site.post(&format!("/missions/{mission}/claim"))
                .bearer_auth(&person),
            201,
        )
        .await
        .context("claiming the mission")?;
        people.push(person);
    }
    let photo = photo(FILE_BYTES);
    let started = Instant::now();
    let mut uploads = tokio::task::JoinSet::new();
    for person in people {
        let request = site
            .post(&format!("/missions/{mission}/evidence"))
            .bearer_auth(person)
            .multipart(
                reqwest::multipart::Form::new()
                    .part(
                        "files",
                        reqwest::multipart::Part::bytes(photo.clone())
                            .file_name("strip-test.jpg")
                            .mime_str("image/jpeg")?,
                    )
                    .text("notes", "The strip beside the labelled bottle"),
            );
        uploads.spawn(async move {
            let t = Instant::now();
            let answered = request.send().await;
            let ok = answered.is_ok_and(|r| r.status().as_u16() == 201);
            (ok, t.elapsed())
        });
    }
    let mut samples = Samples::default();
    while let Some(done) = uploads.join_next().await {
        match done {
            Ok((true, latency)) => samples.ok(latency),
            _ => samples.error(),
        }
    }
    samples.elapsed = started.elapsed();
    let slowest = samples.quantile_ms(1.0);
    Ok(Row::from_samples(
        "S5",
        format!(
            "{uploaders} concurrent {} MB evidence uploads (multipart, one photo each)",
            FILE_BYTES / (1024 * 1024)
        ),
        &samples,
    )
    .with_figure(slowest.unwrap_or(f64::NAN) / 1000.0, "s slowest")
    .judged(
        "each < 5 s, no errors",
        samples.errors == 0
            && samples.count() == uploaders as u64
            && slowest.is_some_and(|v| v < 5000.0),
    ))
}

/// A JPEG of `bytes` bytes: start of image, a JFIF header, end of image, then filler (as a camera's
/// trailing data; the platform reads the markers, not the pixels).
fn photo(bytes: usize) -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    jpeg.extend_from_slice(b"JFIF\0");
    jpeg.extend_from_slice(&[0x01, 0x02, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]);
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    let filler = bytes.saturating_sub(jpeg.len());
    jpeg.extend((0..filler).map(|i| (i % 251) as u8));
    jpeg
}

/// The platform as the set-up sees it: HTTP for what people do, the database for what only the
/// harness reads (verdicts in the log, codes in the development mailbox).
struct Site<'a> {
    env: &'a Env,
    db: &'a Db,
    base: &'a str,
}

impl<'a> Site<'a> {
    fn new(env: &'a Env, db: &'a Db, stack: &'a Stack) -> Self {
        Self {
            env,
            db,
            base: &stack.base,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.env
            .http
            .post(self.url(path))
            .header("Idempotency-Key", Uuid::new_v4().to_string())
    }

    /// Sends `request`; its body when it answered `expected`.
    async fn send(&self, request: reqwest::RequestBuilder, expected: u16) -> anyhow::Result<Value> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        ensure!(
            status == expected,
            "answered {status}, not {expected}: {body}"
        );
        Ok(body)
    }

    /// A new admin, made as an operator makes one, logged in; its access token.
    async fn admin(&self) -> anyhow::Result<String> {
        let email = format!("bench-admin-{}@bench.example.org", Uuid::new_v4().simple());
        let password = format!("Bench-{}-Admin9", &Uuid::new_v4().simple().to_string()[..8]);
        let exe = std::env::current_exe().context("cannot find this binary")?;
        let config = self.db.stack(self.env, 2);
        let mut cmd = config.command(&exe, "admin");
        cmd.args(["create", "--role", "admin", "--email", &email])
            .env("BW_ADMIN_PASSWORD", &password);
        let out = cmd.output().await.context("cannot run `admin create`")?;
        ensure!(
            out.status.success(),
            "`betterworld admin create` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.login(&email, &password).await
    }

    async fn login(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let body = self
            .send(
                self.post("/human-auth/login")
                    .json(&json!({ "email": email, "password": password })),
                200,
            )
            .await
            .context("logging in")?;
        Ok(body["data"]["accessToken"]
            .as_str()
            .context("no accessToken")?
            .to_owned())
    }

    /// A human who registered, verified the address with the mailed code and logged in.
    async fn human(&self, name: &str) -> anyhow::Result<String> {
        let email = format!("bench-{name}@people.example.org");
        let password = format!("Bench-{name}-Pass9");
        self.send(
            self.post("/human-auth/register").json(&json!({
                "email": email, "password": password, "displayName": format!("Uploader {name}")
            })),
            201,
        )
        .await
        .context("registering a human")?;
        let mail = bw_infra::notify::read_mailbox(&self.db.pool, Some(&email), 1).await?;
        let code: String = mail
            .first()
            .context("no verification mail")?
            .body
            .chars()
            .filter(char::is_ascii_digit)
            .take(6)
            .collect();
        self.send(
            self.post("/human-auth/verify-email")
                .json(&json!({ "email": email, "verificationCode": code })),
            200,
        )
        .await
        .context("verifying the address")?;
        self.login(&email, &password).await
    }

    /// An approved mission with `slots` claims, created from an approved solution of an approved
    /// problem of a new agent.
    async fn mission(&self, admin: &str, slots: usize) -> anyhow::Result<Uuid> {
        let (status, body) = register_agent(&self.env.http, self.base).await?;
        ensure!(
            status == 201,
            "agent registration answered {status}: {body}"
        );
        let key = body["data"]["apiKey"]
            .as_str()
            .context("no apiKey")?
            .to_owned();
        let (lat, lng) = data::CITIES[0];
        let problem = self
            .submit(
                &key,
                "/problems",
                "problemId",
                json!({
                    "title": "Arsenic in the tube wells of the lower ward",
                    "description": "Testing last year found that more than half the tube wells in the lower \
                                    ward exceed the national arsenic limit, and families still drink from \
                                    them because the painted red marks have faded.",
                    "domain": "clean_water_sanitation",
                    "severity": "high",
                    "latitude": lat,
                    "longitude": lng
                }),
            )
            .await?;
        self.approved(admin, problem).await?;
        let solution = self
            .submit(
                &key,
                "/solutions",
                "solutionId",
                json!({
                    "problemId": problem,
                    "title": "Retest and remark every tube well in the lower ward",
                    "description": "Families drink arsenic-contaminated water because nobody can tell the \
                                    safe wells from the unsafe ones any more.",
                    "approach": "Train volunteers to test each tube well with field arsenic kits, repaint \
                                 the marks red or green by the result, and share the list with the union \
                                 council so unsafe wells get a safe alternative.",
                    "expectedImpact": { "metric": "tube wells retested and remarked", "value": 40, "timeframe": "3 months" }
                }),
            )
            .await?;
        self.approved(admin, solution).await?;
        let mission = self
            .submit(
                &key,
                "/missions",
                "missionId",
                json!({
                    "solutionId": solution,
                    "title": "Test one tube well for arsenic and repaint its mark",
                    "description": "More than half the tube wells in the lower ward exceed the arsenic limit \
                                    and their painted marks have faded. Test the water of the tube well \
                                    assigned to you with the field kit and repaint its mark so families \
                                    know whether it is safe to drink.",
                    "instructions": [
                        { "step": 1, "text": "Collect a water sample from the tube well" },
                        { "step": 2, "text": "Run the field arsenic test and read the result" },
                        { "step": 3, "text": "Repaint the well's mark red or green to match the result" }
                    ],
                    "evidenceRequired": [{ "type": "photo", "description": "The test strip beside the repainted tube well" }],
                    "requiredSkills": ["water testing"],
                    "requiredLatitude": lat,
                    "requiredLongitude": lng,
                    "estimatedDurationMinutes": 60,
                    "difficulty": "beginner",
                    "tokenReward": 25,
                    "maxClaims": slots,
                    "expiresAt": chrono::Utc::now() + chrono::TimeDelta::days(30)
                }),
            )
            .await?;
        self.approved(admin, mission).await?;
        Ok(mission)
    }

    /// `POST path` as agent `key`; the new item's id (`field` of the answer).
    async fn submit(
        &self,
        key: &str,
        path: &str,
        field: &str,
        body: Value,
    ) -> anyhow::Result<Uuid> {
        let answer = self
            .send(self.post(path).bearer_auth(key).json(&body), 202)
            .await
            .with_context(|| format!("POST {path}"))?;
        answer["data"][field]
            .as_str()
            .and_then(|id| id.parse().ok())
            .with_context(|| format!("no {field} in {answer}"))
    }

    /// Waits for the guardrail's verdict on `id`; approves it as `admin` when it was flagged.
    async fn approved(&self, admin: &str, id: Uuid) -> anyhow::Result<()> {
        let deadline = Instant::now() + VERDICT_WITHIN;
        let (position, verdict) = loop {
            let found: Option<(i64, Value)> = sqlx::query_as(
                "SELECT global_position, payload FROM events
                 WHERE aggregate_id = $1 AND event_type = 'GuardrailDecided'
                 ORDER BY global_position DESC LIMIT 1",
            )
            .bind(id.to_string())
            .fetch_optional(&self.db.pool)
            .await?;
            if let Some(found) = found {
                break found;
            }
            ensure!(
                Instant::now() < deadline,
                "no guardrail verdict on {id} within {VERDICT_WITHIN:?}"
            );
            // The verdict is an event in the log; the harness has no subscription to it: poll.
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        match verdict["data"]["decision"].as_str() {
            Some("approved") => Ok(()),
            Some("flagged") => {
                let item = verdict["data"]["verdictId"]
                    .as_str()
                    .context("no verdictId")?;
                // The review queue is a read model: wait until it holds the verdict.
                self.send(
                    self.env
                        .http
                        .get(self.url(&format!("/admin/flagged/{item}")))
                        .bearer_auth(admin)
                        .header("bw-min-position", position),
                    200,
                )
                .await
                .context("finding the flagged item")?;
                self.send(
                    self.post(&format!("/admin/flagged/{item}/claim"))
                        .bearer_auth(admin),
                    200,
                )
                .await
                .context("claiming the flagged item")?;
                self.send(
                    self.post(&format!("/admin/flagged/{item}/review"))
                        .bearer_auth(admin)
                        .json(&json!({ "decision": "approve", "notes": "Set-up of the evidence benchmark." })),
                    200,
                )
                .await
                .context("approving the flagged item")?;
                Ok(())
            }
            other => bail!("the guardrail decided {other:?} on the benchmark's {id}: {verdict}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_size_when_a_photo_is_made_then_it_is_a_jpeg_of_exactly_that_size() {
        let jpeg = photo(FILE_BYTES);
        assert_eq!(jpeg.len(), FILE_BYTES);
        assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
        assert_eq!(&jpeg[6..11], b"JFIF\0");
    }
}
