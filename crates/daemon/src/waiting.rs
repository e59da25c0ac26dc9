//! Starting in any order: `serve` waits for what is not there yet (the broker, HA, InfluxDB or
//! its database in a compose stack or at boot) instead of exiting into a restart loop. It says
//! once a minute what it waits for, and keeps it in the heartbeat for `pwsync health`.
//!
//! Only what can appear by itself is waited for. A refused login, a bad URL or a wrong field
//! name does not heal by waiting: those end `serve` with the one-line error, as before.

use super::clock::now;
use super::shutdown::Shutdown;
use crate::heartbeat::Beater;
use std::future::Future;
use std::time::Duration;

/// How often the same wait is said again in the log.
const SAY_EVERY: i64 = 60;
/// Retries start after a second and double up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One attempt's failure: worth waiting for, or the end.
pub(super) enum Attempt {
    /// Not there yet (unreachable, not created yet): the reason, in words.
    Wait(String),
    Fatal(anyhow::Error),
}

/// What serve waits for now, and when it last said so.
pub(super) struct Waiting {
    what: Option<String>,
    said_at: i64,
}

impl Waiting {
    pub(super) fn new() -> Waiting {
        Waiting {
            what: None,
            said_at: i64::MIN,
        }
    }

    /// Serve cannot go on because of `what`: logged when it is new, then once a minute.
    pub(super) fn on(&mut self, what: &str, beater: &mut Beater, now: i64) {
        let new = self.what.as_deref() != Some(what);
        if new || now - self.said_at >= SAY_EVERY {
            tracing::warn!("waiting for {what}; retrying");
            self.said_at = now;
        }
        if new {
            beater.waiting(what);
            self.what = Some(what.to_string());
        }
    }

    /// What was waited for is there; whether there had been a wait.
    pub(super) fn over(&mut self) -> bool {
        self.what.take().is_some()
    }
}

/// `attempt` again with backoff until it succeeds or fails for good; `None` when a signal
/// asks serve to stop meanwhile.
pub(super) async fn until_ready<T, F, Fut>(
    mut attempt: F,
    waiting: &mut Waiting,
    beater: &mut Beater,
    stop: &mut Shutdown,
) -> anyhow::Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let mut backoff = Duration::from_secs(1);
    loop {
        match attempt().await {
            Ok(v) => return Ok(Some(v)),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Wait(what)) => waiting.on(&what, beater, now()),
        }
        if stop.wait(backoff).await {
            return Ok(None);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_said_when_new_then_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let mut beater = Beater::at(Some(dir.path().to_path_buf()), 60);
        let mut w = Waiting::new();
        w.on("the MQTT broker", &mut beater, 1_000);
        assert_eq!(w.said_at, 1_000);
        w.on("the MQTT broker", &mut beater, 1_059);
        assert_eq!(w.said_at, 1_000, "said again within the minute");
        w.on("the MQTT broker", &mut beater, 1_060);
        assert_eq!(w.said_at, 1_060);
        w.on("InfluxDB", &mut beater, 1_061);
        assert_eq!(w.said_at, 1_061, "a new wait is said at once");
        let beat = crate::heartbeat::read(dir.path()).unwrap();
        assert_eq!(beat.waiting.as_deref(), Some("InfluxDB"));
        assert_eq!(beat.last_poll, 0);
        assert!(w.over());
        assert!(w.what.is_none() && !w.over());
    }
}
