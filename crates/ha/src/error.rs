//! What can go wrong talking to HA. Every message is one line and says what to do where it can.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// No websocket to HA: wrong URL, HA down, not HA at all.
    #[error("cannot reach Home Assistant at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// `auth_invalid`.
    #[error(
        "HA rejected the access token: create a long-lived token in your HA profile and set homeassistant.token"
    )]
    InvalidToken,
    /// The token's user may not run an admin-only command (`unauthorized`).
    #[error(
        "HA refused {command}: the token's user is not an administrator (use an admin user's long-lived token)"
    )]
    NotAdmin { command: String },
    /// HA does not know the command (`unknown_command`): an HA too old, or a component not loaded.
    #[error("HA {ha_version} does not know the command {command} (is its recorder enabled?)")]
    UnknownCommand { command: String, ha_version: String },
    /// HA answered with an error.
    #[error("HA refused {command}: {message} ({code})")]
    Command {
        command: String,
        code: String,
        message: String,
    },
    /// No reply in time.
    #[error("HA did not answer {command} within {} s", timeout.as_secs_f64())]
    Timeout { command: String, timeout: Duration },
    /// The websocket closed or failed while a reply was pending.
    #[error("lost the connection to Home Assistant during {command}: {reason}")]
    ConnectionLost { command: String, reason: String },
    /// A reply that does not have the shape HA documents.
    #[error("unexpected reply from HA to {command}: {detail}")]
    Protocol { command: String, detail: String },
}

impl HaError {
    /// HA's error code, for command errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            HaError::Command { code, .. } => Some(code),
            HaError::NotAdmin { .. } => Some("unauthorized"),
            HaError::UnknownCommand { .. } => Some("unknown_command"),
            _ => None,
        }
    }

    /// Errors of the connection rather than of the request.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            HaError::Unreachable { .. }
                | HaError::InvalidToken
                | HaError::Timeout { .. }
                | HaError::ConnectionLost { .. }
        )
    }
}

/// Text from HA on one line, not too long for a message.
pub(crate) fn one_line(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 300 {
        let cut: String = flat.chars().take(300).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

impl From<HaError> for pwsync_store::StoreError {
    fn from(e: HaError) -> Self {
        use pwsync_store::StoreError;
        match e {
            HaError::Unreachable { .. }
            | HaError::InvalidToken
            | HaError::Timeout { .. }
            | HaError::ConnectionLost { .. } => StoreError::Connection(e.to_string()),
            HaError::NotAdmin { .. } | HaError::UnknownCommand { .. } => {
                StoreError::Refused(e.to_string())
            }
            HaError::Command { .. } | HaError::Protocol { .. } => {
                StoreError::Command(e.to_string())
            }
        }
    }
}
