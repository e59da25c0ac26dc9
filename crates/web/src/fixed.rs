//! A [`Backend`] that answers from views it was given and runs no job: for benches and tests
//! of the panel's HTTP side (routing, pages, the chart) without `serve` behind it.

use crate::model::*;
use crate::Backend;
use async_trait::async_trait;
use tokio::sync::watch;

pub struct Fixed {
    pub status: StatusView,
    pub history: HistoryView,
    pub log: Vec<LogEntry>,
    progress: watch::Sender<Progress>,
}

impl Fixed {
    pub fn new(status: StatusView, history: HistoryView, log: Vec<LogEntry>) -> Fixed {
        Fixed {
            status,
            history,
            log,
            progress: watch::channel(Progress::default()).0,
        }
    }
}

const NO_JOBS: &str = "this panel runs no jobs";

#[async_trait]
impl Backend for Fixed {
    async fn status(&self) -> StatusView {
        self.status.clone()
    }
    async fn history(&self) -> HistoryView {
        self.history.clone()
    }
    async fn check(&self) -> Result<(), String> {
        Err(NO_JOBS.into())
    }
    async fn dry_run(&self, _: &JobForm) -> Result<Plan, String> {
        Err(NO_JOBS.into())
    }
    async fn apply(&self, _: u64) -> Result<u64, String> {
        Err(NO_JOBS.into())
    }
    fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
    async fn log(&self) -> Vec<LogEntry> {
        self.log.clone()
    }
    async fn resume(&self) -> Result<(), String> {
        Err(NO_JOBS.into())
    }
    async fn backups(&self) -> Vec<Backup> {
        Vec::new()
    }
}
