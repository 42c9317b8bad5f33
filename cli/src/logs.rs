//! Log events on stderr, so that stdout stays the command's answer.
//!
//! Without `--json`: human lines at `TASKSTORE_LOG` (default `warn`: the library's `info` would
//! drown a terminal), coloured only when stderr is a terminal. With `--json`, stderr must stay
//! machine-readable: the same events (default `warn`) as one JSON object per line, each with a
//! `level`, beside the one `{"error": ...}` object. Warnings must survive `--json`: some say
//! what to do before anything fails (a server whose messages are not in English, say).

use std::fmt::Debug;
use std::io::{IsTerminal, Write};

use serde_json::{Map, Value, json};
use tracing_subscriber::field::Visit;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the subscriber for this run.
pub fn init(json: bool, default: &str) {
    let requested = std::env::var("TASKSTORE_LOG").ok();
    let filter = requested
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    if json {
        let _ = tracing_subscriber::registry()
            .with(JsonLines.with_filter(filter))
            .try_init();
    } else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init();
    }
}

/// Writes each event as one JSON object on its own stderr line: `level`, `target`, and
/// `fields` (`message` among them). Span context is left out: the CLI's spans carry
/// nothing a script needs.
struct JsonLines;

impl<S: tracing::Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        // Fields nested, as tracing-subscriber's own JSON format does: an event field named
        // `error` must not look like the command's error object.
        let line = json!({
            "level": meta.level().as_str(),
            "target": meta.target(),
            "fields": Value::Object(fields.0),
        });
        let message = taskstore::redact::scrub(&line.to_string());
        let _ = writeln!(std::io::stderr().lock(), "{message}");
    }
}

/// An event's fields as JSON values.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
        self.0
            .insert(field.name().to_owned(), json!(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
}
