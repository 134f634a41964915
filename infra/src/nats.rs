//! NATS: the connection and the JetStream stream definitions shipped in `nats/streams/`.

use std::time::Duration;

use async_nats::{
    Client, ConnectOptions,
    jetstream::{self, stream},
};

use crate::{InfraError, config::NatsConfig, config::redact_url};

const VARIABLE: &str = "NATS_URL";

/// The stream definitions in `nats/streams/`, embedded at build time: `(file name, JSON)`.
const STREAM_FILES: &[(&str, &str)] = &[(
    "BW_EVENTS.json",
    include_str!("../../nats/streams/BW_EVENTS.json"),
)];

/// Connects to NATS and checks JetStream answers, or fails within `connect_timeout` with an error
/// naming `NATS_URL`.
///
/// After start-up the client reconnects by itself for ever; readiness reports the outage meanwhile.
pub async fn connect(config: &NatsConfig, client_name: &str) -> Result<Client, InfraError> {
    let url = config.url.expose();
    let target = redact_url(url);
    let fail = |reason: String| InfraError::Unreachable {
        variable: VARIABLE,
        target: target.clone(),
        reason,
    };
    let options = ConnectOptions::new()
        .name(client_name)
        .connection_timeout(config.connect_timeout)
        .max_reconnects(None)
        .event_callback(|event| async move {
            tracing::info!(nats_event = %event, "nats connection event");
        });
    let connecting = async {
        let client = options
            .connect(url.as_str())
            .await
            .map_err(|e| fail(e.to_string()))?;
        jetstream_info(&client).await.map_err(|e| {
            fail(format!(
                "JetStream does not answer (is it enabled, `-js`?): {e}"
            ))
        })?;
        Ok(client)
    };
    match tokio::time::timeout(config.connect_timeout + Duration::from_secs(1), connecting).await {
        Ok(result) => result,
        Err(_) => Err(fail(format!(
            "no answer within {:?}",
            config.connect_timeout
        ))),
    }
}

/// Asks the JetStream API for the account information (`$JS.API.INFO`), proving JetStream is enabled
/// and answering.
///
/// The raw request is used instead of `Context::query_account`, whose typed response does not parse
/// the answer of the NATS 2.9 servers Debian 12 ships.
pub async fn jetstream_info(client: &Client) -> Result<serde_json::Value, String> {
    let reply = client
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    let body: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| format!("unreadable JetStream answer: {e}"))?;
    match body.get("error") {
        Some(error) => Err(format!("JetStream error: {error}")),
        None => Ok(body),
    }
}

/// The stream definitions shipped with the binary, parsed.
pub fn stream_definitions() -> Result<Vec<stream::Config>, InfraError> {
    STREAM_FILES
        .iter()
        .map(|(file, json)| {
            serde_json::from_str(json).map_err(|e| {
                InfraError::JetStream(format!(
                    "nats/streams/{file} is not a stream definition: {e}"
                ))
            })
        })
        .collect()
}

/// Creates the stream when missing and updates it when its definition changed.
pub async fn apply_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Info, InfraError> {
    let name = config.name.clone();
    js.create_or_update_stream(config)
        .await
        .map_err(|e| InfraError::JetStream(format!("cannot create or update stream {name}: {e}")))
}

/// Applies every shipped stream definition, with `replicas` overriding the files' replica count.
pub async fn apply_all_streams(
    js: &jetstream::Context,
    replicas: Option<usize>,
) -> Result<Vec<stream::Info>, InfraError> {
    let mut applied = Vec::new();
    for mut config in stream_definitions()? {
        if let Some(replicas) = replicas {
            config.num_replicas = replicas;
        }
        applied.push(apply_stream(js, config).await?);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_definitions_parse() {
        let defs = stream_definitions().expect("definitions parse");
        let events = defs
            .iter()
            .find(|d| d.name == "BW_EVENTS")
            .expect("BW_EVENTS defined");
        assert_eq!(events.subjects, vec!["bw.events.>".to_owned()]);
        assert_eq!(events.storage, stream::StorageType::File);
        assert_eq!(events.duplicate_window, Duration::from_secs(600));
        assert_eq!(events.max_age, Duration::from_secs(30 * 24 * 3600));
    }
}

/// Where the event log is published: the stream and its subject prefix. Production uses the
/// shipped `BW_EVENTS` on `bw.events`; tests give each run a stream and prefix of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsStream {
    /// The JetStream stream name.
    pub name: String,
    /// Subjects are `<prefix>.<AggregateType>.<EventType>`.
    pub subject_prefix: String,
}

impl Default for EventsStream {
    fn default() -> Self {
        Self {
            name: "BW_EVENTS".to_owned(),
            subject_prefix: "bw.events".to_owned(),
        }
    }
}

impl EventsStream {
    /// The subject of one event.
    pub fn subject(&self, aggregate_type: &str, event_type: &str) -> String {
        format!("{}.{aggregate_type}.{event_type}", self.subject_prefix)
    }

    /// Creates or updates this stream from the shipped `BW_EVENTS` definition (limits, storage,
    /// duplicate window), with this stream's name and subjects.
    pub async fn apply(
        &self,
        js: &jetstream::Context,
        replicas: Option<usize>,
    ) -> Result<stream::Info, InfraError> {
        let mut config = stream_definitions()?
            .into_iter()
            .find(|d| d.name == "BW_EVENTS")
            .ok_or_else(|| {
                InfraError::JetStream("nats/streams/BW_EVENTS.json is missing".into())
            })?;
        config.name = self.name.clone();
        config.subjects = vec![format!("{}.>", self.subject_prefix)];
        if let Some(replicas) = replicas {
            config.num_replicas = replicas;
        }
        apply_stream(js, config).await
    }
}
