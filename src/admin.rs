//! `betterworld admin …`: accounts only the operator may create, and the access-token key.

use std::io::Write as _;

use bw_commands::people::{NewHuman, register_human};
use bw_commands::{CommandBus, CommandContext};
use bw_domain::{
    meta::Actor,
    taxonomy::Role,
    values::{EmailAddress, HumanName, Password},
};
use bw_infra::{CommonConfig, postgres};
use uuid::Uuid;

use crate::cli::{AdminCommand, AdminCreateArgs};

/// Runs an `admin` subcommand.
pub async fn run(common: CommonConfig, command: AdminCommand) -> anyhow::Result<()> {
    let pool = postgres::connect(&common.database).await?;
    postgres::ensure_migrated(&pool).await?;
    let result = match command {
        AdminCommand::Create(args) => create(&pool, args).await,
        AdminCommand::RotateTokenKey => {
            let kid = bw_infra::crypto::keyring::rotate(&pool).await?;
            writeln!(
                std::io::stdout(),
                "New access-token key {kid}; previous keys verify for {} more minutes.",
                bw_infra::crypto::keyring::ROTATION_GRACE.num_minutes()
            )?;
            Ok(())
        }
    };
    pool.close().await;
    result
}

/// A password that meets the policy: 24 random letters and digits (about 143 bits), plus one of
/// each required class.
pub fn generate_password() -> String {
    use rand::Rng as _;
    let random: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("{random}Aa7")
}

/// The command context of work the operator does from the command line.
pub fn operator_context(what: &str) -> CommandContext {
    CommandContext {
        actor: Actor::System,
        correlation_id: format!("{what}-{}", Uuid::now_v7()),
        causation_id: None,
        traceparent: None,
        idempotency: None,
    }
}

/// Registers a pre-verified account and returns its id.
pub async fn create_account(
    bus: &CommandBus,
    email_secret: &[u8],
    email: &str,
    password: &str,
    display_name: &str,
    role: Role,
) -> anyhow::Result<Uuid> {
    let new = NewHuman {
        email: EmailAddress::parse(email)?,
        password: Password::parse(password)?,
        display_name: HumanName::parse(display_name)?,
        role,
    };
    let (_, human_id, _) = register_human(
        bus,
        email_secret,
        new,
        &operator_context("admin-create"),
        true,
    )
    .await
    // Worded as the API words the same refusal (e.g. a taken address).
    .map_err(|e| anyhow::anyhow!("{}", bw_gateway::ApiError::from(e)))?;
    Ok(human_id)
}

async fn create(pool: &sqlx::PgPool, args: AdminCreateArgs) -> anyhow::Result<()> {
    let role: Role = args.role.parse()?;
    let secret = crate::roles::email_secret(pool, &args.people).await?;
    let (password, generated) = match &args.password {
        Some(p) => (p.expose().clone(), false),
        None => (generate_password(), true),
    };
    let human_id = create_account(
        &CommandBus::new(pool.clone()),
        secret.expose(),
        &args.email,
        &password,
        &args.display_name,
        role,
    )
    .await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Created {role} {human_id}.")?;
    if generated {
        writeln!(out, "Password (shown once): {password}")?;
    }
    Ok(())
}
