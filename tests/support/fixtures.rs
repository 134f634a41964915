//! Commands for tests, issued through the real command bus.

use bw_commands::{CommandContext, CommandError, Outcome, idempotency::StoredResponse};
use bw_domain::{
    agent::{Agent, AgentCommand, RegisterAgent, Specializations},
    meta::Actor,
    problem::{Problem, ProblemChanges, ProblemCommand, ProblemDetails},
    taxonomy::{AgentFramework, ProblemDomain, Severity},
    values::{Description, Title, Username},
};
use uuid::Uuid;

pub fn ctx(actor: Actor) -> CommandContext {
    CommandContext {
        actor,
        correlation_id: Uuid::now_v7().to_string(),
        causation_id: None,
        traceparent: None,
        idempotency: None,
    }
}

pub fn respond(position: Option<i64>) -> StoredResponse {
    StoredResponse {
        status: 201,
        body: serde_json::json!({}),
        position,
    }
}

pub fn register_command(agent_id: Uuid, username: &str) -> AgentCommand {
    AgentCommand::Register(Box::new(RegisterAgent {
        agent_id,
        username: Username::parse(username).expect("valid username"),
        display_name: None,
        framework: AgentFramework::Custom,
        specializations: Specializations::parse(vec![ProblemDomain::FoodSecurity]).expect("valid"),
        model_provider: None,
        model_name: None,
        soul_summary: None,
        api_key_sha256: hex_sha(agent_id),
        api_key_prefix: agent_id.simple().to_string()[..12].to_owned(),
        at: chrono::Utc::now(),
    }))
}

fn hex_sha(id: Uuid) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(id.as_bytes()))
}

pub async fn register(bus: &bw_commands::CommandBus, username: &str) -> Uuid {
    let agent_id = Uuid::now_v7();
    bus.execute::<Agent>(
        &agent_id.to_string(),
        register_command(agent_id, username),
        &ctx(Actor::Anonymous),
        respond,
    )
    .await
    .expect("registered");
    agent_id
}

pub fn details(n: usize) -> ProblemDetails {
    ProblemDetails {
        title: Title::parse(&format!("Broken water pump number {n}")).expect("valid"),
        description: Description::parse(&format!("Pump {n} has been broken for weeks and three hundred families walk two hours for water.")).expect("valid"),
        domain: ProblemDomain::CleanWaterSanitation,
        severity: Severity::High,
        affected_population_estimate: None,
        geographic_scope: None,
        location_name: None,
        location: None,
        existing_solutions: vec![],
        data_sources: vec![],
        evidence_links: vec![],
        language: bw_domain::values::Language::english(),
    }
}

pub async fn report(
    bus: &bw_commands::CommandBus,
    agent: Uuid,
    n: usize,
) -> Result<(Uuid, Outcome), CommandError> {
    let problem_id = Uuid::now_v7();
    let command = ProblemCommand::Report {
        problem_id,
        agent_id: agent,
        details: Box::new(details(n)),
        at: chrono::Utc::now(),
    };
    let outcome = bus
        .execute::<Problem>(
            &problem_id.to_string(),
            command,
            &ctx(Actor::Agent(agent)),
            respond,
        )
        .await?;
    Ok((problem_id, outcome))
}

pub async fn edit(
    bus: &bw_commands::CommandBus,
    agent: Uuid,
    problem: Uuid,
    severity: Severity,
) -> Result<Outcome, CommandError> {
    edit_as(bus, Actor::Agent(agent), agent, problem, severity).await
}

/// [`edit`] with the metadata of `actor` (the platform's own commands carry `system`).
pub async fn edit_as(
    bus: &bw_commands::CommandBus,
    actor: Actor,
    agent: Uuid,
    problem: Uuid,
    severity: Severity,
) -> Result<Outcome, CommandError> {
    let changes = ProblemChanges {
        severity: Some(severity),
        ..ProblemChanges::default()
    };
    let command = ProblemCommand::Edit {
        agent_id: agent,
        changes: Box::new(changes),
        at: chrono::Utc::now(),
    };
    bus.execute::<Problem>(&problem.to_string(), command, &ctx(actor), respond)
        .await
}

/// A slow writer: a transaction that has appended a `ProblemReported` by `agent` (taking its
/// transaction id and global position, and the event-writer lock) but has not committed. Returns
/// the open transaction and the event's position.
pub async fn uncommitted_report(
    pool: &sqlx::PgPool,
    agent: Uuid,
) -> (sqlx::Transaction<'static, sqlx::Postgres>, i64) {
    use bw_eventlog::store;
    let slow_id = Uuid::now_v7();
    let mut slow = pool.begin().await.expect("begin");
    let loaded = store::load::<Problem>(&mut slow, &slow_id.to_string())
        .await
        .expect("load");
    let events = vec![bw_domain::problem::ProblemEvent::ProblemReported {
        problem_id: slow_id,
        reported_by: agent,
        details: Box::new(details(0)),
        status: bw_domain::taxonomy::ProblemStatus::Active,
        guardrail_status: bw_domain::taxonomy::GuardrailStatus::Pending,
        reported_at: chrono::Utc::now(),
    }];
    let prepared = store::prepare::<Problem>(
        &slow_id.to_string(),
        loaded.version,
        loaded.last_hash,
        &events,
        &ctx(Actor::Agent(agent)).metadata(),
        chrono::Utc::now(),
    )
    .expect("prepare");
    let position = store::append(&mut slow, "Problem", &prepared)
        .await
        .expect("append")[0]
        .global_position;
    (slow, position)
}
