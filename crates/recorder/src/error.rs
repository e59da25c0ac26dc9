use pwsync_store::StoreError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The URL is malformed or names an unsupported engine, or the file does not exist.
    #[error("{0}")]
    Url(String),
    /// Could not connect.
    #[error("cannot open the recorder database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// Not HA's recorder database, an unknown schema version, HA running, read-only.
    #[error("{0}")]
    Refused(String),
    /// The plan cannot be written (non-finite values, a statistic in a non-energy unit).
    #[error("{0}")]
    Invalid(String),
    /// A statement failed; the transaction was rolled back.
    #[error("recorder database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// The SQLite backup could not be made; nothing was written.
    #[error("could not back up {db} to {backup}: {source}")]
    Backup {
        db: PathBuf,
        backup: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A write failed after its backup was made and was rolled back; `note` says what became
    /// of the backup.
    #[error("{error}; nothing was written, and {note}")]
    RolledBack {
        error: Box<RecorderError>,
        note: String,
    },
}

impl From<RecorderError> for StoreError {
    fn from(e: RecorderError) -> Self {
        match e {
            RecorderError::Url(_) | RecorderError::Connect { .. } => {
                StoreError::Connection(e.to_string())
            }
            RecorderError::Refused(_) => StoreError::Refused(e.to_string()),
            _ => StoreError::Command(e.to_string()),
        }
    }
}
