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
    #[error("invalid influxdb.url: {0}: expected e.g. http://localhost:8086")]
    BadUrl(String),
    #[error("InfluxDB at {url} is unreachable: check influxdb.url and that InfluxDB is running")]
    Unreachable { url: String },
    #[error("the connection to InfluxDB at {url} was lost in the middle of its answer: check that InfluxDB is running (it may have restarted or crashed), then run pwsync again")]
    ConnectionLost { url: String },
    #[error("InfluxDB at {url} did not answer within {secs} s: raise influxdb.timeout_secs or query a shorter range")]
    Timeout { url: String, secs: u64 },
    #[error("InfluxDB rejected the credentials: check influxdb.username and influxdb.password")]
    Auth,
    #[error("InfluxDB database '{0}' does not exist: check influxdb.database (SHOW DATABASES lists them)")]
    DatabaseNotFound(String),
    #[error("retention policy '{0}' does not exist: check influxdb.retention_policy (SHOW RETENTION POLICIES)")]
    RetentionPolicyNotFound(String),
    #[error("measurement '{measurement}' does not exist in retention policy '{rp}': check influxdb.measurement (SHOW MEASUREMENTS lists them; Powerwall-Dashboard writes 'http')")]
    MeasurementNotFound { rp: String, measurement: String },
    #[error("field '{field}' does not exist in {rp}.{measurement}: check influxdb.fields")]
    UnknownField {
        field: String,
        rp: String,
        measurement: String,
    },
    #[error("invalid {what} '{}': use letters, digits, '_', '-' or '.'", value.escape_debug())]
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

impl InfluxError {
    /// A mistake in the configuration (wrong URL, name or credentials) rather than a server
    /// that is down or slow: retrying cannot fix it.
    pub fn is_config_mistake(&self) -> bool {
        matches!(
            self,
            InfluxError::BadUrl(_)
                | InfluxError::Auth
                | InfluxError::DatabaseNotFound(_)
                | InfluxError::RetentionPolicyNotFound(_)
                | InfluxError::MeasurementNotFound { .. }
                | InfluxError::UnknownField { .. }
                | InfluxError::BadIdentifier { .. }
        )
    }
}

/// An InfluxDB base URL pwsync can send requests to: `http(s)://host[:port][/path]`. Checked
/// before any request, so a typo is named as such and not as an unreadable answer.
pub fn check_url(url: &str) -> Result<(), InfluxError> {
    let bad = |why: String| Err(InfluxError::BadUrl(why));
    if url.trim().is_empty() {
        return bad("it is empty".into());
    }
    let u = match url::Url::parse(url) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => return bad("no scheme (http://)".into()),
        Err(e) => return bad(e.to_string()),
    };
    match u.scheme() {
        "http" => {}
        // This build has no TLS for HTTP: refused here, not reported later as "unreachable".
        "https" => return bad(
            "https:// is not supported yet (Powerwall-Dashboard's InfluxDB serves plain HTTP on port 8086)"
                .into(),
        ),
        s => return bad(format!("unsupported scheme '{}'", s.escape_debug())),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return bad("no host".into());
    }
    Ok(())
}

impl InfluxClient {
    pub fn new(cfg: InfluxConfig) -> Result<Self, InfluxError> {
        check_url(&cfg.url)?;
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
        } else if e.is_builder() {
            InfluxError::BadUrl(e.without_url().to_string())
        } else if e.is_connect() || e.is_request() {
            InfluxError::Unreachable {
                url: pwsync_redact::url(&self.cfg.url),
            }
        } else {
            InfluxError::Decode(e.without_url().to_string())
        }
    }

    /// An error while reading an answer whose headers arrived: past a timeout, the server
    /// closed the connection before the whole body came (crashed, restarted, killed).
    fn map_body(&self, e: reqwest::Error) -> InfluxError {
        if e.is_timeout() {
            self.map_send(e)
        } else {
            InfluxError::ConnectionLost {
                url: self.cfg.url.clone(),
            }
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
        let body = resp.bytes().await.map_err(|e| self.map_body(e))?;
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
        // After a failed statement InfluxDB marks the rest "not executed": report the cause.
        let errors = || r.results.iter().filter_map(|s| s.error.as_ref());
        if let Some(e) = errors()
            .find(|e| e.as_str() != "not executed")
            .or_else(|| errors().next())
        {
            return Err(self.statement_error(e.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Fault injection a real InfluxDB cannot do on demand: a server that sends the headers
    /// of a 1000-byte answer, a few bytes of it, and closes the connection.
    async fn server_that_dies_mid_answer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                          Content-Length: 1000\r\n\r\n{\"results\":[{\"statement_id\":0,",
                    )
                    .await;
                let _ = conn.flush().await;
                drop(conn);
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_connection_lost_mid_answer_is_named_as_such() {
        let url = server_that_dies_mid_answer().await;
        let c = InfluxClient::new(InfluxConfig {
            url: url.clone(),
            timeout: Duration::from_secs(5),
            ..InfluxConfig::default()
        })
        .unwrap();
        let e = c.execute("SHOW DATABASES").await.unwrap_err();
        assert!(matches!(e, InfluxError::ConnectionLost { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("connection to InfluxDB")
                && msg.contains("was lost")
                && msg.contains(&url),
            "{msg}"
        );
        assert!(!msg.contains("decoding"), "{msg}");
    }

    #[test]
    fn a_malformed_url_is_refused_before_any_request() {
        for (url, why) in [
            ("localhost", "no scheme"),
            ("", "empty"),
            ("http://localhost:99999", "invalid port"),
            ("ftp://localhost", "unsupported scheme 'ftp'"),
        ] {
            let e = InfluxClient::new(InfluxConfig {
                url: url.into(),
                ..InfluxConfig::default()
            })
            .err()
            .unwrap_or_else(|| panic!("{url:?} accepted"))
            .to_string();
            assert!(
                e.contains("invalid influxdb.url") && e.contains(why),
                "{url:?}: {e}"
            );
        }
    }

    #[test]
    fn a_control_character_in_an_identifier_is_escaped() {
        let e = crate::Ident::new("field", "ho\nme")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n') && e.contains("'ho\\nme'"), "{e}");
    }
}
