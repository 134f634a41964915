//! Solutions and debates over HTTP, and archiving problems.

mod support;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use support::{Platform, field_error, send};

struct Agent {
    key: String,
}

fn position(headers: &header::HeaderMap) -> String {
    headers["bw-position"].to_str().expect("ascii").to_owned()
}

async fn register(p: &Platform, username: &str) -> Agent {
    let body = json!({ "username": username, "framework": "custom", "specializations": ["food_security"] });
    let (status, _, body) = send(p.http.post(p.url("/auth/agents/register")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Agent {
        key: body["data"]["apiKey"].as_str().expect("key").to_owned(),
    }
}

async fn report(p: &Platform, agent: &Agent) -> String {
    let body = json!({
        "title": "Food bank shelves empty by Wednesday",
        "description": "The neighbourhood food bank runs out mid-week; 120 families are turned away every Thursday and Friday.",
        "domain": "food_security",
        "severity": "high"
    });
    let (status, _, body) = send(
        p.http
            .post(p.url("/problems"))
            .bearer_auth(&agent.key)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["data"]["problemId"].as_str().expect("id").to_owned()
}

fn solution(problem_id: &str) -> Value {
    json!({
        "problemId": problem_id,
        "title": "Surplus pickup from three supermarkets",
        "description": "Collect unsold produce daily from three nearby supermarkets and deliver it to the food bank before noon.",
        "approach": "Volunteer drivers on a rota, a shared cold box per car, and a pickup log the supermarkets sign.",
        "expectedImpact": { "metric": "families served on Thursday and Friday", "value": 120, "timeframe": "3 months" },
        "estimatedCost": { "amount": 800, "currency": "EUR" },
        "risksAndMitigations": [{ "risk": "drivers drop out", "mitigation": "two backups per day" }],
        "requiredSkills": ["driving"]
    })
}

async fn propose(p: &Platform, agent: &Agent, problem_id: &str) -> (String, String) {
    let (status, headers, body) = send(
        p.http
            .post(p.url("/solutions"))
            .bearer_auth(&agent.key)
            .json(&solution(problem_id)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    (
        body["data"]["solutionId"].as_str().expect("id").to_owned(),
        position(&headers),
    )
}

fn debate(parent: Option<&str>) -> Value {
    json!({
        "stance": "modify",
        "content": "Add a fourth pickup on Wednesdays; the shortfall starts before Thursday according to the log.",
        "parentDebateId": parent
    })
}

#[tokio::test]
async fn a_solution_is_proposed_for_an_existing_problem_and_counted_in_the_feed() {
    let p = Platform::spawn().await;
    let owner = register(&p, "food_owner").await;
    let other = register(&p, "food_other").await;
    let problem = report(&p, &owner).await;

    let missing = uuid::Uuid::now_v7().to_string();
    let (status, _, _) = send(
        p.http
            .post(p.url("/solutions"))
            .bearer_auth(&owner.key)
            .json(&solution(&missing)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut invalid = solution(&problem);
    invalid["expectedImpact"]["value"] = json!("lots");
    assert_eq!(
        send(
            p.http
                .post(p.url("/solutions"))
                .bearer_auth(&owner.key)
                .json(&invalid)
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let mut short = solution(&problem);
    short["approach"] = json!("too short");
    short["estimatedCost"] = json!({ "amount": -5, "currency": "EUR" });
    let (status, _, body) = send(
        p.http
            .post(p.url("/solutions"))
            .bearer_auth(&owner.key)
            .json(&short),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["details"]["fields"]["approach"].is_array()
            && body["error"]["details"]["fields"]["estimatedCost"].is_array(),
        "{body}"
    );

    let (id, at) = propose(&p, &other, &problem).await;
    let (status, _, body) = send(
        p.http
            .get(p.url(&format!("/solutions/{id}")))
            .bearer_auth(&other.key)
            .header("bw-min-position", &at),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "proposed");
    assert_eq!(body["data"]["guardrailExplanation"], "pending review");
    assert_eq!(body["data"]["expectedImpact"]["value"], 120.0);
    assert_eq!(
        send(
            p.http
                .get(p.url(&format!("/solutions/{id}")))
                .bearer_auth(&owner.key)
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    let (_, _, body) = send(
        p.http
            .get(p.url(&format!("/problems/{problem}")))
            .bearer_auth(&owner.key)
            .header("bw-min-position", &at),
    )
    .await;
    assert_eq!(body["data"]["solutionCount"], 1, "{body}");
    let (_, _, body) = send(
        p.http
            .get(p.url(&format!(
                "/solutions?mine=true&problemId={problem}&sort=score"
            )))
            .bearer_auth(&other.key),
    )
    .await;
    assert_eq!(body["data"][0]["solutionId"], id.as_str(), "{body}");
    let (status, _, _) = send(p.http.get(p.url("/solutions?sort=best&problemId=x"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_archived_problem_refuses_solutions_and_only_its_owner_archives_it() {
    let p = Platform::spawn().await;
    let owner = register(&p, "archiver").await;
    let other = register(&p, "bystander_agent").await;
    let problem = report(&p, &owner).await;
    let url = p.url(&format!("/problems/{problem}"));
    assert_eq!(
        send(p.http.delete(&url).bearer_auth(&other.key)).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, headers, body) = send(p.http.delete(&url).bearer_auth(&owner.key)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _, body) = send(p.http.delete(&url).bearer_auth(&owner.key)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("CONFLICT"))
    );
    let (_, _, body) = send(
        p.http
            .get(&url)
            .bearer_auth(&owner.key)
            .header("bw-min-position", position(&headers)),
    )
    .await;
    assert_eq!(body["data"]["status"], "archived");
    let (status, _, body) = send(
        p.http
            .post(p.url("/solutions"))
            .bearer_auth(&other.key)
            .json(&solution(&problem)),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("CONFLICT")),
        "{body}"
    );
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'Problem' AND event_type <> 'GuardrailDecided'")
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("count");
    assert_eq!(events, 2, "reported and archived; nothing deleted");
}

#[tokio::test]
async fn debates_thread_five_deep_and_the_first_moves_the_solution_to_debating() {
    let p = Platform::spawn().await;
    let owner = register(&p, "sol_owner").await;
    let critic = register(&p, "critic").await;
    let problem = report(&p, &owner).await;
    let (solution_id, _) = propose(&p, &owner, &problem).await;
    let url = p.url(&format!("/solutions/{solution_id}/debates"));

    let mut parent: Option<String> = None;
    let mut last_position = String::new();
    for _ in 0..5 {
        let (status, headers, body) = send(
            p.http
                .post(&url)
                .bearer_auth(&critic.key)
                .json(&debate(parent.as_deref())),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        parent = Some(body["data"]["debateId"].as_str().expect("id").to_owned());
        last_position = position(&headers);
    }
    let (status, _, body) = send(
        p.http
            .post(&url)
            .bearer_auth(&critic.key)
            .json(&debate(parent.as_deref())),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        field_error(&body, "parentDebateId").contains("5 deep"),
        "{body}"
    );
    let stranger = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        send(
            p.http
                .post(&url)
                .bearer_auth(&critic.key)
                .json(&debate(Some(&stranger)))
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let mut bad = debate(None);
    bad["stance"] = json!("heckle");
    assert_eq!(
        send(p.http.post(&url).bearer_auth(&critic.key).json(&bad))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let nowhere = p.url(&format!("/solutions/{}/debates", uuid::Uuid::now_v7()));
    assert_eq!(
        send(
            p.http
                .post(&nowhere)
                .bearer_auth(&critic.key)
                .json(&debate(None))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    let (_, _, body) = send(
        p.http
            .get(p.url(&format!("/solutions/{solution_id}")))
            .bearer_auth(&owner.key)
            .header("bw-min-position", &last_position),
    )
    .await;
    assert_eq!(body["data"]["status"], "debating");
    assert_eq!(body["data"]["debateCount"], 5);
    // Pending contributions are visible to their author only.
    let (_, _, body) = send(p.http.get(&url).bearer_auth(&owner.key)).await;
    assert_eq!(body["data"], json!([]), "{body}");
    let (status, _, body) = send(
        p.http
            .get(&url)
            .bearer_auth(&owner.key)
            .header("bw-min-position", &last_position),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!([]));
    let (status, _, body) = send(
        p.http
            .get(format!("{url}?stance=modify"))
            .bearer_auth(&critic.key),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the critic cannot see the pending solution: {body}"
    );
    let depths: Vec<i64> =
        sqlx::query_scalar("SELECT depth::bigint FROM rm_debates ORDER BY posted_at")
            .fetch_all(&p.pipeline.pool)
            .await
            .expect("debates");
    assert_eq!(depths, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn concurrent_debates_on_one_solution_all_land() {
    let p = Platform::spawn().await;
    let owner = register(&p, "popular").await;
    let problem = report(&p, &owner).await;
    let (solution_id, _) = propose(&p, &owner, &problem).await;
    let url = p.url(&format!("/solutions/{solution_id}/debates"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let request = p
            .http
            .post(&url)
            .bearer_auth(&owner.key)
            .json(&debate(None));
        tasks.push(tokio::spawn(async move {
            request.send().await.expect("send").status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!(accepted + conflicts, 8, "{statuses:?}");
    let posted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'DebatePosted'")
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("count");
    assert_eq!(
        posted as usize, accepted,
        "every accepted debate is in the log, no other"
    );
    assert!(accepted >= 1, "{statuses:?}");
    // The read model counts exactly the accepted posts: no lost update, nothing counted twice.
    let (_, _, body) = send(
        p.http
            .get(p.url(&format!("/solutions/{solution_id}")))
            .bearer_auth(&owner.key)
            .header("bw-min-position", i64::MAX.to_string()),
    )
    .await;
    assert_eq!(body["data"]["debateCount"], accepted, "{body}");
}

#[tokio::test]
async fn only_the_proposer_edits_a_solution_and_an_edit_resets_its_scores() {
    let p = Platform::spawn().await;
    let owner = register(&p, "sol_editor").await;
    let other = register(&p, "sol_intruder").await;
    let problem = report(&p, &owner).await;
    let (solution_id, _) = propose(&p, &owner, &problem).await;
    let url = p.url(&format!("/solutions/{solution_id}"));
    assert_eq!(
        send(
            p.http
                .patch(&url)
                .bearer_auth(&other.key)
                .json(&json!({"timelineEstimate": "1 month"}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (status, _, body) = send(
        p.http
            .patch(&url)
            .bearer_auth(&owner.key)
            .json(&json!({"problemId": problem})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["details"]["fields"]["problemId"].is_array());
    let (status, headers, _) = send(p.http.patch(&url).bearer_auth(&owner.key).json(
        &json!({"timelineEstimate": "1 month", "requiredSkills": ["driving", "cold chain"]}),
    ))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, _, body) = send(
        p.http
            .get(&url)
            .bearer_auth(&owner.key)
            .header("bw-min-position", position(&headers)),
    )
    .await;
    assert_eq!(body["data"]["timelineEstimate"], "1 month");
    assert_eq!(
        body["data"]["requiredSkills"],
        json!(["driving", "cold chain"])
    );
    assert_eq!(body["data"]["editCount"], 1);
    assert_eq!(body["data"]["compositeScore"], 0.0);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_report_the_budget() {
    let p = Platform::spawn_rate_limited().await;
    // Registration: 5 per hour per client address.
    let mut last = None;
    for n in 0..5 {
        let body = json!({ "username": format!("limited_{n}"), "framework": "custom", "specializations": ["food_security"] });
        let response = p
            .http
            .post(p.url("/auth/agents/register"))
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            response
                .headers()
                .get("x-ratelimit-limit")
                .map(|v| v.to_str().unwrap_or_default().to_owned()),
            Some("5".to_owned()),
            "{:?}",
            response.headers()
        );
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            (4 - n).to_string().as_str()
        );
        last = Some(response.json::<Value>().await.expect("json"));
    }
    let body = json!({ "username": "limited_6", "framework": "custom", "specializations": ["food_security"] });
    let (status, headers, body) =
        send(p.http.post(p.url("/auth/agents/register")).json(&body)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMITED"))
    );
    assert_eq!(
        headers[header::RETRY_AFTER],
        "720",
        "one registration every 12 minutes refills"
    );
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    // A made-up token does not buy a fresh registration budget.
    let body = json!({ "username": "limited_7", "framework": "custom", "specializations": ["food_security"] });
    let (status, _, _) = send(
        p.http
            .post(p.url("/auth/agents/register"))
            .bearer_auth("ff".repeat(32))
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let registered: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&p.pipeline.pool)
        .await
        .expect("count");
    assert_eq!(registered, 5, "the refused request appended nothing");

    // Problems: 10 per minute per agent, on top of the agent's 60 per minute.
    let key = last.expect("an agent")["data"]["apiKey"]
        .as_str()
        .expect("key")
        .to_owned();
    let agent = Agent { key };
    let body = json!({
        "title": "Food bank shelves empty by Wednesday",
        "description": "The neighbourhood food bank runs out mid-week; 120 families are turned away every Thursday and Friday.",
        "domain": "food_security", "severity": "high"
    });
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(
            p.http
                .post(p.url("/problems"))
                .bearer_auth(&agent.key)
                .json(&body)
                .send()
                .await
                .expect("send")
                .status(),
        );
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count(),
        10
    );
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
    // Reads are not held back by the write limit.
    let response = p
        .http
        .get(p.url("/problems?mine=true"))
        .bearer_auth(&agent.key)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-ratelimit-limit"],
        "30",
        "an agent that has not verified its e-mail gets the pending tier"
    );
    // Operations endpoints are never limited.
    let ready = p
        .http
        .get(p.root_url("/healthz"))
        .send()
        .await
        .expect("send");
    assert!(ready.headers().get("x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn solutions_page_by_score_with_ties_broken_newest_first() {
    let p = Platform::spawn().await;
    let owner = register(&p, "score_pager").await;
    let problem = report(&p, &owner).await;
    let (older, _) = propose(&p, &owner, &problem).await;
    let (newer, at) = propose(&p, &owner, &problem).await;
    let list = |cursor: &str| {
        p.http
            .get(p.url(&format!(
                "/solutions?mine=true&problemId={problem}&sort=score&limit=1{cursor}"
            )))
            .bearer_auth(&owner.key)
            .header("bw-min-position", &at)
    };
    let (status, _, first) = send(list("")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        (
            first["data"][0]["compositeScore"].as_f64(),
            first["data"][0]["solutionId"].as_str()
        ),
        (Some(0.0), Some(newer.as_str())),
        "{first}"
    );
    let next = first["meta"]["nextCursor"].as_str().expect("a second page");
    let (_, _, second) = send(list(&format!("&cursor={next}"))).await;
    assert_eq!(second["data"][0]["solutionId"], older.as_str(), "{second}");
    assert_eq!(second["data"].as_array().map(Vec::len), Some(1));
    assert!(second["meta"]["nextCursor"].is_null(), "{second}");
}

#[tokio::test]
async fn a_problem_records_its_language_and_a_malformed_tag_is_refused() {
    let p = Platform::spawn().await;
    let agent = register(&p, "multilingual").await;
    let body = |language: &str| {
        json!({
            "title": "Kisima cha kijiji kimechafuka",
            "description": "Kisima pekee kinachohudumia kaya mia tatu kimepatikana na vijidudu; familia zinatembea saa mbili kupata maji.",
            "domain": "clean_water_sanitation", "severity": "high", "language": language
        })
    };
    let (status, headers, created) = send(
        p.http
            .post(p.url("/problems"))
            .bearer_auth(&agent.key)
            .json(&body("SW")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["data"]["problemId"].as_str().expect("id");
    let (_, _, read) = send(
        p.http
            .get(p.url(&format!("/problems/{id}")))
            .bearer_auth(&agent.key)
            .header("bw-min-position", position(&headers)),
    )
    .await;
    assert_eq!(read["data"]["language"], "sw", "normalised: {read}");
    let mut unstated = body("en");
    unstated.as_object_mut().expect("body").remove("language");
    let (status, headers, created) = send(
        p.http
            .post(p.url("/problems"))
            .bearer_auth(&agent.key)
            .json(&unstated),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let english = created["data"]["problemId"].as_str().expect("id");
    let (_, _, read) = send(
        p.http
            .get(p.url(&format!("/problems/{english}")))
            .bearer_auth(&agent.key)
            .header("bw-min-position", position(&headers)),
    )
    .await;
    assert_eq!(read["data"]["language"], "en", "the default: {read}");
    let (status, _, refused) = send(
        p.http
            .post(p.url("/problems"))
            .bearer_auth(&agent.key)
            .json(&body("kiswahili please")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        field_error(&refused, "language").contains("BCP 47"),
        "{refused}"
    );
}
