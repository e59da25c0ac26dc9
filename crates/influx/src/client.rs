//! The HTTP client: `/ping`, `/query`, `/write`, with errors that name the problem and the fix.

use crate::Ident;
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct InfluxConfig {
    pub url: String,
    pub database: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub retention_policy: String,
    pub measurement: String,
    pub timeout: Duration,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            url: "http://localhost:8086".into(),
            database: "powerwall".into(),
            username: None,
            password: None,
            retention_policy: "autogen".into(),
            measurement: "http".into(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for InfluxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxConfig")
            .field("url", &pwsync_redact::url(&self.url))
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("retention_policy", &self.retention_policy)
            .field("measurement", &self.measurement)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    #[error("InfluxDB at {url} is unreachable: check influxdb.url and that InfluxDB is running")]
    Unreachable { url: String },
    #[error("InfluxDB at {url} did not answer within {secs} s: raise influxdb.timeout_secs or query a shorter range")]
    Timeout { url: String, secs: u64 },
    #[error("InfluxDB rejected the credentials: check influxdb.username and influxdb.password")]
    Auth,
    #[error("InfluxDB database '{0}' does not exist: check influxdb.database (SHOW DATABASES lists them)")]
    DatabaseNotFound(String),
    #[error("retention policy '{0}' does not exist: check influxdb.retention_policy (SHOW RETENTION POLICIES)")]
    RetentionPolicyNotFound(String),
    #[error("field '{field}' does not exist in {rp}.{measurement}: check influxdb.fields")]
    UnknownField {
        field: String,
        rp: String,
        measurement: String,
    },
    #[error("invalid {what} '{value}': use letters, digits, '_', '-' or '.'")]
    BadIdentifier { what: String, value: String },
    #[error("InfluxDB answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("InfluxDB query failed: {0}")]
    Statement(String),
    #[error("InfluxDB sent an answer pwsync cannot read: {0}")]
    Decode(String),
}

/// One entry of the diagnostic ring of recent queries (credentials are never part of it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryLog {
    pub query: String,
    pub millis: u64,
    pub rows: usize,
    pub error: Option<String>,
}

const RING: usize = 20;

pub struct InfluxClient {
    cfg: InfluxConfig,
    http: reqwest::Client,
    pub(crate) db: Ident,
    pub(crate) rp: Ident,
    pub(crate) measurement: Ident,
    ring: Mutex<VecDeque<QueryLog>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(crate) struct Response<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<StatementResult<T>>,
    pub error: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(crate) struct StatementResult<T> {
    #[serde(default = "Vec::new")]
    pub series: Vec<Series<T>>,
    pub error: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(crate) struct Series<T> {
    #[serde(default = "Vec::new")]
    pub values: Vec<Vec<T>>,
}

/// A JSON cell: numbers for data, strings for SHOW output.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub(crate) enum Cell {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
}

impl InfluxClient {
    pub fn new(cfg: InfluxConfig) -> Result<Self, InfluxError> {
        let db = Ident::new("database", &cfg.database)?;
        let rp = Ident::new("retention policy", &cfg.retention_policy)?;
        let measurement = Ident::new("measurement", &cfg.measurement)?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| InfluxError::Decode(e.to_string()))?;
        Ok(InfluxClient {
            cfg,
            http,
            db,
            rp,
            measurement,
            ring: Mutex::new(VecDeque::with_capacity(RING)),
        })
    }

    pub fn config(&self) -> &InfluxConfig {
        &self.cfg
    }

    /// The last 20 queries, oldest first.
    pub fn recent_queries(&self) -> Vec<QueryLog> {
        self.ring.lock().unwrap().iter().cloned().collect()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.cfg.url.trim_end_matches('/'), path)
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cfg.username {
            Some(u) if !u.is_empty() => rb.basic_auth(u, self.cfg.password.as_deref()),
            _ => rb,
        }
    }

    fn map_send(&self, e: reqwest::Error) -> InfluxError {
        if e.is_timeout() {
            InfluxError::Timeout {
                url: pwsync_redact::url(&self.cfg.url),
                secs: self.cfg.timeout.as_secs(),
            }
        } else if e.is_connect() || e.is_request() {
            InfluxError::Unreachable {
                url: pwsync_redact::url(&self.cfg.url),
            }
        } else {
            InfluxError::Decode(e.without_url().to_string())
        }
    }

    /// `/ping`: the server's version.
    pub async fn ping(&self) -> Result<String, InfluxError> {
        let resp = self
            .auth(self.http.get(self.url("ping")))
            .send()
            .await
            .map_err(|e| self.map_send(e))?;
        check_status(resp.status(), "")?;
        Ok(resp
            .headers()
            .get("X-Influxdb-Version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown")
            .to_string())
    }

    /// Run a query (several statements may be separated by `;`) against the configured database
    /// and decode each statement's cells as `T`.
    pub(crate) async fn query_as<T: serde::de::DeserializeOwned>(
        &self,
        q: &str,
    ) -> Result<Vec<StatementResult<T>>, InfluxError> {
        let t0 = Instant::now();
        let res = self.query_inner::<T>(q).await;
        let rows = match &res {
            Ok(r) => r
                .iter()
                .flat_map(|s| s.series.iter())
                .map(|s| s.values.len())
                .sum(),
            Err(_) => 0,
        };
        let entry = QueryLog {
            query: q.to_string(),
            millis: t0.elapsed().as_millis() as u64,
            rows,
            error: res.as_ref().err().map(|e| e.to_string()),
        };
        tracing::debug!(query = q, millis = entry.millis, rows, "influx query");
        let mut ring = self.ring.lock().unwrap();
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(entry);
        res
    }

    async fn query_inner<T: serde::de::DeserializeOwned>(
        &self,
        q: &str,
    ) -> Result<Vec<StatementResult<T>>, InfluxError> {
        let resp = self
            .auth(self.http.post(self.url("query")))
            .form(&[("db", self.cfg.database.as_str()), ("q", q), ("epoch", "s")])
            .send()
            .await
            .map_err(|e| self.map_send(e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.map_send(e))?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<Response<Cell>>(&body)
                .ok()
                .and_then(|r| r.error)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
            check_status(status, &msg)?;
        }
        let r: Response<T> =
            serde_json::from_slice(&body).map_err(|e| InfluxError::Decode(e.to_string()))?;
        if let Some(e) = r.error {
            return Err(self.statement_error(e));
        }
        if let Some(e) = r.results.iter().find_map(|s| s.error.clone()) {
            return Err(self.statement_error(e));
        }
        Ok(r.results)
    }

    fn statement_error(&self, e: String) -> InfluxError {
        if e.starts_with("database not found") {
            InfluxError::DatabaseNotFound(self.cfg.database.clone())
        } else if e.starts_with("retention policy not found") {
            InfluxError::RetentionPolicyNotFound(self.cfg.retention_policy.clone())
        } else if e.contains("authorization failed") || e.contains("authentication") {
            InfluxError::Auth
        } else {
            InfluxError::Statement(e)
        }
    }

    /// Run statements whose answer is not needed (DDL).
    pub async fn execute(&self, q: &str) -> Result<(), InfluxError> {
        self.query_as::<Cell>(q).await.map(|_| ())
    }

    /// Write line protocol into `rp` with second precision.
    pub async fn write_lines(&self, rp: &str, body: String) -> Result<(), InfluxError> {
        let rp = Ident::new("retention policy", rp)?;
        let resp = self
            .auth(self.http.post(self.url("write")))
            .query(&[
                ("db", self.cfg.database.as_str()),
                ("rp", rp.as_str()),
                ("precision", "s"),
            ])
            .body(body)
            .send()
            .await
            .map_err(|e| self.map_send(e))?;
        let status = resp.status();
        if !status.is_success() {
            let msg = resp.text().await.unwrap_or_default();
            if msg.contains("database not found") {
                return Err(InfluxError::DatabaseNotFound(self.cfg.database.clone()));
            }
            check_status(status, msg.trim())?;
        }
        Ok(())
    }

    /// String cells of the first column of every row of statement 0 (for SHOW queries).
    pub(crate) async fn show(&self, q: &str) -> Result<Vec<String>, InfluxError> {
        let r = self.query_as::<Cell>(q).await?;
        Ok(r.into_iter()
            .flat_map(|s| s.series)
            .flat_map(|s| s.values)
            .filter_map(|row| match row.into_iter().next() {
                Some(Cell::Str(s)) => Some(s),
                _ => None,
            })
            .collect())
    }
}

fn check_status(status: reqwest::StatusCode, msg: &str) -> Result<(), InfluxError> {
    match status.as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(InfluxError::Auth),
        s => Err(InfluxError::Http {
            status: s,
            message: msg.chars().take(200).collect(),
        }),
    }
}
