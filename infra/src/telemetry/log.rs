//! The log layer: one line per event, JSON by default, with every value redacted before it is written.
//!
//! Fields of the spans an event happens in (such as `request_id`, set by the gateway on every request
//! span) are copied into the event's line, so each line of a request carries its request id.

use std::io::Write;

use serde_json::{Map, Value};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{Layer, fmt::MakeWriter, layer::Context, registry::LookupSpan};

use super::redact::{REDACTED, is_sensitive_name, scrub};
use crate::config::LogFormat;

/// Writes each event as one redacted line to `W`.
#[derive(Debug)]
pub struct LogLayer<W> {
    format: LogFormat,
    make_writer: W,
}

impl<W> LogLayer<W> {
    /// A layer writing `format` lines to the writers `make_writer` makes.
    pub fn new(format: LogFormat, make_writer: W) -> Self {
        Self {
            format,
            make_writer,
        }
    }
}

/// The recorded fields of a span, kept in its extensions.
#[derive(Debug, Default)]
struct SpanFields(Map<String, Value>);

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl FieldVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let value = if name != "message" && is_sensitive_name(name) {
            Value::String(REDACTED.to_owned())
        } else {
            value
        };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(scrub(value).into_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(
            field,
            Value::String(scrub(&format!("{value:?}")).into_owned()),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(scrub(&value.to_string()).into_owned()));
    }
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut FieldVisitor(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut FieldVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        event.record(&mut FieldVisitor(&mut fields));
        let mut context = Map::new();
        let mut span_name = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(own) = span.extensions().get::<SpanFields>() {
                    for (k, v) in &own.0 {
                        context.insert(k.clone(), v.clone());
                    }
                }
                span_name = Some(span.name());
            }
        }
        let meta = event.metadata();
        let line = match self.format {
            LogFormat::Json => json_line(meta, fields, context, span_name),
            LogFormat::Text => text_line(meta, fields, context),
        };
        let mut writer = self.make_writer.make_writer_for(meta);
        // A failed log write has nowhere to be reported; dropping the line is the only option.
        let _ = writer.write_all(line.as_bytes());
    }
}

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn json_line(
    meta: &tracing::Metadata<'_>,
    fields: Map<String, Value>,
    context: Map<String, Value>,
    span_name: Option<&str>,
) -> String {
    let mut line = Map::new();
    line.insert("timestamp".into(), Value::String(timestamp()));
    line.insert("level".into(), Value::String(meta.level().to_string()));
    line.insert("target".into(), Value::String(meta.target().to_owned()));
    for (k, v) in context {
        line.insert(k, v);
    }
    if let Some(name) = span_name {
        line.insert("span".into(), Value::String(name.to_owned()));
    }
    // Event fields win over span fields of the same name.
    for (k, v) in fields {
        line.insert(k, v);
    }
    let mut out = Value::Object(line).to_string();
    out.push('\n');
    out
}

fn text_line(
    meta: &tracing::Metadata<'_>,
    mut fields: Map<String, Value>,
    context: Map<String, Value>,
) -> String {
    let message = match fields.remove("message") {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let mut out = format!(
        "{} {:>5} {}: {message}",
        timestamp(),
        meta.level(),
        meta.target()
    );
    for (k, v) in fields.into_iter().chain(context) {
        match v {
            Value::String(s) => out.push_str(&format!(" {k}={s:?}")),
            other => out.push_str(&format!(" {k}={other}")),
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn capture(format: LogFormat, f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(LogLayer::new(format, buffer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().expect("buffer lock").clone();
        String::from_utf8(bytes).expect("utf-8 logs")
    }

    #[test]
    fn json_lines_carry_span_fields_and_redact_secrets() {
        let out = capture(LogFormat::Json, || {
            let span = tracing::info_span!("request", request_id = "req-1", method = "POST");
            let _entered = span.enter();
            tracing::info!(
                password = "hunter2",
                authorization = "Bearer abc123",
                email = "alice@example.org",
                note = "contact bob@example.org with Bearer xyz789",
                status = 200u64,
                "handled"
            );
        });
        let line: Value = serde_json::from_str(out.trim()).expect("one JSON line");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["message"], "handled");
        assert_eq!(line["status"], 200);
        assert_eq!(line["password"], REDACTED);
        assert_eq!(line["authorization"], REDACTED);
        assert_eq!(line["email"], REDACTED);
        assert_eq!(line["note"], "contact [email] with Bearer [redacted]");
        for secret in ["hunter2", "abc123", "alice@", "bob@", "xyz789"] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
    }

    #[test]
    fn text_lines_are_redacted_too() {
        let out = capture(LogFormat::Text, || {
            tracing::warn!(api_key = "k-123", "login failed for carol@example.org");
        });
        assert!(out.contains("WARN"), "{out}");
        assert!(out.contains("login failed for [email]"), "{out}");
        assert!(!out.contains("k-123") && !out.contains("carol@"), "{out}");
    }
}
