//! pwsync's web panel, served by `pwsync serve`: **Status** (what `doctor` says, the live
//! meters), **History** (the last check: HA against InfluxDB per day, and its problems),
//! **Jobs** (backfill, migrate and repair: a dry run first, then "Apply" for that plan, with a
//! live progress bar) and **Log** (past jobs with their reports).
//!
//! This crate is only the HTTP side: pages, forms, access rules, progress events. What the
//! pages show and what the jobs do comes from a [`Backend`], which `serve` implements with the
//! CLI's own code paths. So a job started here is the job the CLI runs, and the panel cannot
//! write anything the CLI would not.
//!
//! Every link is relative (HA's ingress serves the panel under `/api/hassio_ingress/<token>/`),
//! every asset is embedded in the binary, and a state-changing request is a POST carrying the
//! page's CSRF token. Who may connect at all is [`access::Access`]; under which names, and
//! from which pages a form may come, is [`host`]. How many connections, and for how long, is
//! [`server`].

pub mod access;
pub mod advice;
pub mod fixed;
pub mod format;
pub mod host;
pub mod model;
mod pages;
mod routes;
pub mod server;

pub use access::Access;
pub use host::Hosts;
pub use model::*;
pub use routes::router;
pub use server::{serve, serve_with, Limits};

use async_trait::async_trait;
use tokio::sync::watch;

/// What the panel shows and does. Implemented by `serve`; every method answers from what it
/// keeps (pages must answer in milliseconds), except the dry run, which is the job itself.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The Status page: `doctor`'s findings and the live meters.
    async fn status(&self) -> StatusView;
    /// The History page: the last check's report.
    async fn history(&self) -> HistoryView;
    /// Start a check of the whole history (the History page's button).
    async fn check(&self) -> Result<(), String>;
    /// Run `form` as a dry run and keep its plan for [`Backend::apply`].
    async fn dry_run(&self, form: &JobForm) -> Result<Plan, String>;
    /// Run the plan of an earlier dry run for real. Refused while another job runs.
    async fn apply(&self, plan: u64) -> Result<u64, String>;
    /// The running (or last) job's progress.
    fn progress(&self) -> watch::Receiver<Progress>;
    /// Past jobs, newest first.
    async fn log(&self) -> Vec<LogEntry>;
    /// Run again the job a previous run left unfinished ([`StatusView::interrupted`]).
    async fn resume(&self) -> Result<(), String>;
    /// Energy preferences saved before the panel changed them, newest first.
    async fn backups(&self) -> Vec<Backup>;
}
