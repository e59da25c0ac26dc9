//! The signals that stop the daemon, listened to from its first moment.

use anyhow::Result;
use std::time::Duration;

/// SIGTERM and SIGINT, listened to from the start: a signal that arrives during a poll is kept
/// until the next wait sees it (a stream created later would miss it).
pub(super) struct Shutdown {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    pub(super) fn listen() -> Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Shutdown {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Sleep for `d`; `true` when a signal asked to stop meanwhile.
    pub(super) async fn wait(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = self.signalled() => true,
            _ = tokio::time::sleep(d) => false,
        }
    }

    /// Once SIGTERM or SIGINT arrives (or has arrived since the last call).
    pub(super) async fn signalled(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
