//! Logging: `tracing` to stderr through a background writer, filtered by `RUST_LOG`
//! (default `info`), so a burst of requests never waits on the terminal.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber with `default` as the filter unless `RUST_LOG` is set; logs are
/// flushed when the guard drops.
pub fn init(default: &str) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .init();
    guard
}
