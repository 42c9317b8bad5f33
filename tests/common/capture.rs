//! Log capture for tests that assert on the layer's warnings: every line the process logs is
//! kept (and echoed to stderr, so nextest still shows it). `TASKSTORE_LOG` chooses the level
//! (default `warn`). Replaces `common::init_tracing`'s writer in the test binaries that use it.

use std::sync::{Mutex, Once};

/// Every log line of this test process.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf).into_owned();
        eprint!("{text}");
        LOG.lock().unwrap_or_else(|e| e.into_inner()).push(text);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber once per process.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("TASKSTORE_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(|| CaptureWriter)
            .try_init();
    });
}

/// The lines logged so far that contain `needle`.
pub fn lines_containing(needle: &str) -> Vec<String> {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}
