//! The websocket connection: authentication, ids, replies matched by id, reconnects.
//!
//! One background task per connection owns the socket. Callers hand it a command over a
//! channel; the task numbers commands in the order it writes them (so ids reach HA strictly
//! increasing, whatever the callers' concurrency), remembers who waits for which id and routes
//! each reply there. When the socket fails, every pending caller gets
//! [`HaError::ConnectionLost`] and the next request connects again.

use crate::error::{one_line, HaError};
use crate::metadata::import_metadata;
use crate::types::{
    EntityState, HaConfig, Period, RegistryEntry, StatType, StatValue, StatisticInfo, StatisticKind,
};
use futures_util::{SinkExt, StreamExt};
use pwsync_energy::StatRow;
use pwsync_store::StatMeta;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply = oneshot::Sender<Result<Value, HaError>>;

/// How to reach HA.
#[derive(Clone)]
pub struct ClientOptions {
    /// HA's base URL (`http://host:8123`) or its websocket URL (`ws://host:8123/api/websocket`;
    /// a `ws(s)://` URL with a path is used as given, e.g. the Supervisor's
    /// `ws://supervisor/core/websocket`).
    /// `https`/`wss` need a TLS-enabled build of tokio-tungstenite (not enabled yet).
    pub url: String,
    /// A long-lived access token (an admin user's, for writes).
    pub token: String,
    /// How long to wait for one reply.
    pub request_timeout: Duration,
    /// How long to wait for the connection and authentication.
    pub connect_timeout: Duration,
}

impl ClientOptions {
    pub fn new(url: &str, token: &str) -> Self {
        ClientOptions {
            url: url.to_string(),
            token: token.to_string(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &pwsync_redact::url(&self.url))
            .field("token", &"<redacted>")
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The websocket URL for a base or websocket URL.
pub fn websocket_url(url: &str) -> Result<String, HaError> {
    let bad = |reason: String| HaError::Unreachable {
        url: pwsync_redact::url(url),
        reason,
    };
    let mut u = url::Url::parse(url.trim()).map_err(|e| bad(format!("not a URL ({e})")))?;
    // A websocket URL with a path names the endpoint itself: the Supervisor's proxy for add-ons
    // serves HA's websocket at `/core/websocket`, not below `/api/websocket`.
    let given_endpoint =
        matches!(u.scheme(), "ws" | "wss") && !u.path().trim_matches('/').is_empty();
    let scheme = match u.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(bad(format!(
                "unsupported scheme {other}: use http(s):// or ws(s)://"
            )))
        }
    };
    u.set_scheme(scheme)
        .map_err(|_| bad("cannot use this URL for a websocket".into()))?;
    if !given_endpoint && !u.path().ends_with("/api/websocket") {
        let path = format!("{}/api/websocket", u.path().trim_end_matches('/'));
        u.set_path(&path);
    }
    Ok(u.to_string())
}

struct Request {
    msg: Map<String, Value>,
    reply: Reply,
}

struct Conn {
    tx: mpsc::UnboundedSender<Request>,
    ha_version: String,
}

struct Inner {
    opts: ClientOptions,
    /// The websocket URL, or why the configured URL cannot be one.
    ws_url: Result<String, String>,
    conn: Mutex<Option<Conn>>,
}

/// A client of HA's websocket API. Cheap to clone; clones share the connection. Safe to use
/// from concurrent tasks.
#[derive(Clone)]
pub struct HaClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaClient")
            .field("opts", &self.inner.opts)
            .finish()
    }
}

impl HaClient {
    /// A client; nothing is connected until the first request (or [`HaClient::connect`]).
    pub fn new(opts: ClientOptions) -> Self {
        // Only the reason: `open` names the URL when it reports it, once.
        let ws_url = websocket_url(&opts.url).map_err(|e| match e {
            HaError::Unreachable { reason, .. } => reason,
            other => other.to_string(),
        });
        HaClient {
            inner: Arc::new(Inner {
                opts,
                ws_url,
                conn: Mutex::new(None),
            }),
        }
    }

    /// Connect and authenticate now, to report a wrong URL or token early. Returns HA's version.
    pub async fn connect(&self) -> Result<String, HaError> {
        Ok(self.channel().await?.1)
    }

    /// HA's version from `auth_ok` (connects if needed).
    pub async fn ha_version(&self) -> Result<String, HaError> {
        self.connect().await
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        &self.inner.opts.url
    }

    /// The live connection's sender, connecting first if there is none (or it died).
    async fn channel(&self) -> Result<(mpsc::UnboundedSender<Request>, String), HaError> {
        let mut guard = self.inner.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            if !c.tx.is_closed() {
                return Ok((c.tx.clone(), c.ha_version.clone()));
            }
            tracing::info!(url = %pwsync_redact::url(&self.inner.opts.url), "websocket to HA was lost; reconnecting");
        }
        let (socket, ha_version) = self.open().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_connection(socket, rx, ha_version.clone()));
        *guard = Some(Conn {
            tx: tx.clone(),
            ha_version: ha_version.clone(),
        });
        Ok((tx, ha_version))
    }

    async fn open(&self) -> Result<(Socket, String), HaError> {
        let opts = &self.inner.opts;
        let url = self
            .inner
            .ws_url
            .clone()
            .map_err(|reason| HaError::Unreachable {
                url: pwsync_redact::url(&opts.url),
                reason,
            })?;
        let unreachable = |reason: String| HaError::Unreachable {
            url: pwsync_redact::url(&opts.url),
            reason,
        };
        let handshake = async {
            let config = WebSocketConfig {
                max_message_size: Some(512 << 20),
                max_frame_size: Some(512 << 20),
                ..Default::default()
            };
            let (mut socket, _) =
                tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                    .await
                    .map_err(|e| unreachable(describe_connect_error(&e)))?;
            let hello = recv_json(&mut socket)
                .await
                .map_err(|e| unreachable(format!("no greeting ({e})")))?;
            if hello["type"] != "auth_required" {
                return Err(unreachable(format!(
                    "not Home Assistant's websocket API (first message: {})",
                    one_line(&hello.to_string())
                )));
            }
            let auth = json!({"type": "auth", "access_token": opts.token});
            socket
                .send(Message::Text(auth.to_string()))
                .await
                .map_err(|e| unreachable(format!("sending the token failed ({e})")))?;
            let reply = recv_json(&mut socket).await.map_err(|e| {
                unreachable(format!("connection closed during authentication ({e})"))
            })?;
            match reply["type"].as_str() {
                Some("auth_ok") => {
                    let version = reply["ha_version"].as_str().unwrap_or_default().to_string();
                    Ok((socket, version))
                }
                Some("auth_invalid") => Err(HaError::InvalidToken),
                _ => Err(unreachable(format!(
                    "unexpected authentication reply: {}",
                    one_line(&reply.to_string())
                ))),
            }
        };
        match tokio::time::timeout(opts.connect_timeout, handshake).await {
            Ok(Ok((socket, version))) => {
                tracing::debug!(url = %pwsync_redact::url(&opts.url), %version, "connected to Home Assistant");
                Ok((socket, version))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(unreachable(format!(
                "no answer within {} s",
                opts.connect_timeout.as_secs_f64()
            ))),
        }
    }

    /// Send one command (`{"type": command, ..params}`) and wait for its result. A read-only
    /// command whose connection turns out to be dead (HA restarted since the last request) is
    /// sent once more on a new connection; a write is not, as HA may have run it.
    pub async fn call(&self, command: &str, params: Value) -> Result<Value, HaError> {
        self.call_with_timeout(command, params, self.inner.opts.request_timeout)
            .await
    }

    /// [`HaClient::call`] with its own reply timeout. A reply that comes after the timeout is
    /// dropped; it never reaches another request.
    pub async fn call_with_timeout(
        &self,
        command: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, HaError> {
        match self.call_once(command, params.clone(), timeout).await {
            Err(HaError::ConnectionLost { reason, .. }) if is_read_only(command) => {
                tracing::debug!(%command, %reason, "connection lost; sending the read again");
                self.call_once(command, params, timeout).await
            }
            other => other,
        }
    }

    async fn call_once(
        &self,
        command: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, HaError> {
        let mut msg = match params {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(HaError::Protocol {
                    command: command.to_string(),
                    detail: format!("parameters must be an object, not {other}"),
                })
            }
        };
        msg.insert("type".into(), Value::String(command.to_string()));
        let (reply_tx, reply_rx) = oneshot::channel();
        let mut request = Request {
            msg,
            reply: reply_tx,
        };
        // A connection that died between the check and the send never saw the request:
        // connect again and send it once more.
        let mut attempts = 0;
        loop {
            let (tx, _) = self.channel().await?;
            match tx.send(request) {
                Ok(()) => break,
                Err(mpsc::error::SendError(r)) if attempts == 0 => {
                    request = r;
                    attempts += 1;
                }
                Err(_) => {
                    return Err(HaError::ConnectionLost {
                        command: command.to_string(),
                        reason: "the connection closed".into(),
                    })
                }
            }
        }
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(HaError::ConnectionLost {
                command: command.to_string(),
                reason: "the connection closed".into(),
            }),
            Err(_) => Err(HaError::Timeout {
                command: command.to_string(),
                timeout,
            }),
        }
    }

    async fn call_as<T: DeserializeOwned>(
        &self,
        command: &str,
        params: Value,
    ) -> Result<T, HaError> {
        let v = self.call(command, params).await?;
        serde_json::from_value(v).map_err(|e| HaError::Protocol {
            command: command.to_string(),
            detail: e.to_string(),
        })
    }

    /// `get_config`: time zone, version, core state.
    pub async fn get_config(&self) -> Result<HaConfig, HaError> {
        self.call_as("get_config", Value::Null).await
    }

    /// `config/entity_registry/list`.
    pub async fn entity_registry_list(&self) -> Result<Vec<RegistryEntry>, HaError> {
        self.call_as("config/entity_registry/list", Value::Null)
            .await
    }

    /// `get_states`.
    pub async fn get_states(&self) -> Result<Vec<EntityState>, HaError> {
        self.call_as("get_states", Value::Null).await
    }

    /// `recorder/list_statistic_ids`, optionally only statistics with a sum or a mean.
    pub async fn list_statistic_ids(
        &self,
        kind: Option<StatisticKind>,
    ) -> Result<Vec<StatisticInfo>, HaError> {
        let params = match kind {
            None => json!({}),
            Some(StatisticKind::Sum) => json!({"statistic_type": "sum"}),
            Some(StatisticKind::Mean) => json!({"statistic_type": "mean"}),
        };
        self.call_as("recorder/list_statistic_ids", params).await
    }

    /// `recorder/get_statistics_metadata` of `ids` (all statistics when `ids` is empty).
    pub async fn get_statistics_metadata(
        &self,
        ids: &[String],
    ) -> Result<Vec<StatisticInfo>, HaError> {
        let params = if ids.is_empty() {
            json!({})
        } else {
            json!({ "statistic_ids": ids })
        };
        self.call_as("recorder/get_statistics_metadata", params)
            .await
    }

    /// `recorder/statistics_during_period` for rows with `start` in `[start, end)` (epoch
    /// seconds). `energy_unit` converts energy statistics (e.g. "kWh"). Row times in the reply
    /// are epoch milliseconds. Ids without rows are absent from the map.
    pub async fn statistics_during_period(
        &self,
        start: i64,
        end: i64,
        ids: &[String],
        period: Period,
        types: &[StatType],
        energy_unit: Option<&str>,
    ) -> Result<BTreeMap<String, Vec<StatValue>>, HaError> {
        let mut params = json!({
            "start_time": iso(start),
            "end_time": iso(end),
            "statistic_ids": ids,
            "period": period.as_str(),
            "types": types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        });
        if let Some(unit) = energy_unit {
            params["units"] = json!({ "energy": unit });
        }
        self.call_as("recorder/statistics_during_period", params)
            .await
    }

    /// `recorder/import_statistics`: hourly rows (`start` on the hour), metadata shaped for the
    /// connected HA's version. HA only queues the job: the reply does not mean it is written.
    pub async fn import_statistics(
        &self,
        meta: &StatMeta,
        rows: &[StatRow],
    ) -> Result<(), HaError> {
        let version = self.ha_version().await?;
        let stats: Vec<Value> = rows.iter().map(import_row).collect();
        self.call(
            "recorder/import_statistics",
            json!({ "metadata": import_metadata(meta, &version), "stats": stats }),
        )
        .await
        .map(drop)
    }

    /// `recorder/adjust_sum_statistics`: add `delta` (in `unit`) to `sum` of every 5-minute row
    /// with start ≥ `start` and every hourly row from `start`'s hour on. Queued like an import.
    pub async fn adjust_sum_statistics(
        &self,
        statistic_id: &str,
        start: i64,
        delta: f64,
        unit: &str,
    ) -> Result<(), HaError> {
        self.call(
            "recorder/adjust_sum_statistics",
            json!({
                "statistic_id": statistic_id,
                "start_time": iso(start),
                "adjustment": delta,
                "adjustment_unit_of_measurement": unit,
            }),
        )
        .await
        .map(drop)
    }

    /// `energy/get_prefs`: the Energy dashboard's preferences as HA keeps them, `None` when HA
    /// has none yet (nobody opened the Energy settings).
    pub async fn energy_get_prefs(&self) -> Result<Option<Value>, HaError> {
        match self.call("energy/get_prefs", Value::Null).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == Some("not_found") => Ok(None),
            Err(e) => Err(energy_error(e)),
        }
    }

    /// `energy/save_prefs` with the top-level keys of `prefs` (HA replaces each key given and
    /// keeps the others). HA writes `.storage/energy` up to a minute later, or when it stops.
    pub async fn energy_save_prefs(&self, prefs: &Map<String, Value>) -> Result<Value, HaError> {
        self.call("energy/save_prefs", Value::Object(prefs.clone()))
            .await
            .map_err(energy_error)
    }

    /// A persistent notification in HA's sidebar (`persistent_notification.create`); one with
    /// the same `id` replaces it, so a repeated message does not pile up.
    pub async fn create_notification(
        &self,
        id: &str,
        title: &str,
        message: &str,
    ) -> Result<(), HaError> {
        self.call(
            "call_service",
            json!({
                "domain": "persistent_notification",
                "service": "create",
                "service_data": {"notification_id": id, "title": title, "message": message},
            }),
        )
        .await
        .map(drop)
    }

    /// `recorder/clear_statistics`: delete the statistics (metadata and rows) of `ids`.
    pub async fn clear_statistics(&self, ids: &[String]) -> Result<(), HaError> {
        self.call("recorder/clear_statistics", json!({ "statistic_ids": ids }))
            .await
            .map(drop)
    }
}

/// Commands without side effects, safe to send again.
fn is_read_only(command: &str) -> bool {
    matches!(
        command,
        "get_config"
            | "get_states"
            | "ping"
            | "config/entity_registry/list"
            | "recorder/list_statistic_ids"
            | "recorder/get_statistics_metadata"
            | "recorder/statistics_during_period"
            | "energy/get_prefs"
    )
}

/// An HA without the energy integration (no `default_config:` and no `energy:`) does not know
/// its commands: say that, not the recorder hint of [`HaError::UnknownCommand`].
fn energy_error(e: HaError) -> HaError {
    match e {
        HaError::UnknownCommand { command, .. } => HaError::Command {
            command,
            code: "unknown_command".into(),
            message: "HA's energy integration is not loaded: add `energy:` (or `default_config:`) to configuration.yaml and restart HA".into(),
        },
        other => other,
    }
}

/// Epoch seconds as the tz-aware ISO 8601 string HA parses ("2024-03-10T09:00:00+00:00").
pub fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn import_row(r: &StatRow) -> Value {
    let mut row = Map::new();
    row.insert("start".into(), Value::String(iso(r.start)));
    if let Some(state) = r.state {
        row.insert("state".into(), json!(state));
    }
    if let Some(sum) = r.sum {
        row.insert("sum".into(), json!(sum));
    }
    Value::Object(row)
}

fn describe_connect_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is HA running, and is ha.url right?)".into()
        }
        tungstenite::Error::Http(resp) => format!(
            "HTTP {} at /api/websocket (is this Home Assistant's URL?)",
            resp.status()
        ),
        tungstenite::Error::Url(u) => format!("bad websocket URL ({u})"),
        other => one_line(&other.to_string()),
    }
}

async fn recv_json(socket: &mut Socket) -> Result<Value, String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(&t).map_err(|e| format!("not JSON: {e}"))
            }
            Some(Ok(Message::Close(_))) | None => return Err("closed by HA".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(one_line(&e.to_string())),
        }
    }
}

/// The connection task: writes requests with increasing ids and routes replies to callers.
async fn run_connection(
    mut socket: Socket,
    mut rx: mpsc::UnboundedReceiver<Request>,
    ha_version: String,
) {
    let mut pending: HashMap<u64, (String, Reply)> = HashMap::new();
    let mut next_id: u64 = 1;
    let reason = loop {
        tokio::select! {
            request = rx.recv() => {
                let Some(Request { mut msg, reply }) = request else {
                    // Every client handle is gone.
                    let _ = socket.close(None).await;
                    return;
                };
                let id = next_id;
                next_id += 1;
                let command = msg
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                msg.insert("id".into(), json!(id));
                let text = Value::Object(msg).to_string();
                tracing::trace!(id, %command, bytes = text.len(), "→ HA");
                pending.insert(id, (command, reply));
                if let Err(e) = socket.send(Message::Text(text)).await {
                    break one_line(&e.to_string());
                }
            }
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => dispatch(&text, &mut pending, &ha_version),
                Some(Ok(Message::Close(frame))) => {
                    break match frame {
                        Some(f) if !f.reason.is_empty() => {
                            format!("HA closed the connection ({})", one_line(&f.reason))
                        }
                        _ => "HA closed the connection".into(),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break one_line(&e.to_string()),
                None => break "HA closed the connection".into(),
            }
        }
    };
    tracing::warn!(%reason, pending = pending.len(), "websocket to Home Assistant lost");
    for (_, (command, reply)) in pending.drain() {
        let _ = reply.send(Err(HaError::ConnectionLost {
            command,
            reason: reason.clone(),
        }));
    }
}

fn dispatch(text: &str, pending: &mut HashMap<u64, (String, Reply)>, ha_version: &str) {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        tracing::warn!("HA sent a message that is not JSON");
        return;
    };
    // HA coalesces messages into an array only when asked to; accept both.
    let messages = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    for mut m in messages {
        let Some(id) = m.get("id").and_then(Value::as_u64) else {
            continue;
        };
        if m["type"] != "result" && m["type"] != "pong" {
            continue; // events of subscriptions (none are made)
        }
        let Some((command, reply)) = pending.remove(&id) else {
            continue; // the caller timed out
        };
        tracing::trace!(id, %command, "← HA");
        let result = if m["type"] == "pong" || m["success"] == true {
            Ok(m.get_mut("result").map(Value::take).unwrap_or(Value::Null))
        } else {
            Err(command_error(command, &m["error"], ha_version))
        };
        let _ = reply.send(result);
    }
}

fn command_error(command: String, error: &Value, ha_version: &str) -> HaError {
    let code = error["code"]
        .as_str()
        .unwrap_or("unknown_error")
        .to_string();
    let message = one_line(error["message"].as_str().unwrap_or("no message"));
    match code.as_str() {
        "unauthorized" => HaError::NotAdmin { command },
        "unknown_command" => HaError::UnknownCommand {
            command,
            ha_version: ha_version.to_string(),
        },
        _ => HaError::Command {
            command,
            code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        assert_eq!(
            websocket_url("http://127.0.0.1:8123").unwrap(),
            "ws://127.0.0.1:8123/api/websocket"
        );
        assert_eq!(
            websocket_url("http://ha.local:8123/").unwrap(),
            "ws://ha.local:8123/api/websocket"
        );
        assert_eq!(
            websocket_url("https://ha.example.com").unwrap(),
            "wss://ha.example.com/api/websocket"
        );
        assert_eq!(
            websocket_url("ws://h:1/api/websocket").unwrap(),
            "ws://h:1/api/websocket"
        );
        assert_eq!(
            websocket_url("ws://supervisor/core/websocket").unwrap(),
            "ws://supervisor/core/websocket"
        );
        assert_eq!(websocket_url("ws://h:1").unwrap(), "ws://h:1/api/websocket");
        assert!(websocket_url("ftp://h").is_err());
        assert!(websocket_url("not a url").is_err());
    }

    #[tokio::test]
    async fn a_bad_url_is_reported_once_and_without_its_password() {
        for url in ["ftp://u:hunter2@h", "u:hunter2@h:8123"] {
            let client = HaClient::new(ClientOptions::new(url, "token"));
            let e = client.connect().await.unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert_eq!(e.matches("cannot reach").count(), 1, "{e}");
        }
    }

    #[test]
    fn iso_is_tz_aware() {
        assert_eq!(iso(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso(1_710_061_200), "2024-03-10T09:00:00+00:00");
    }

    #[test]
    fn rows_leave_out_missing_values() {
        let r = import_row(&StatRow {
            start: 3600,
            state: None,
            sum: Some(1.5),
        });
        assert_eq!(r, json!({"start": "1970-01-01T01:00:00+00:00", "sum": 1.5}));
    }

    #[test]
    fn error_codes_map_to_kinds() {
        let e = command_error(
            "recorder/import_statistics".into(),
            &json!({"code": "unauthorized", "message": "Unauthorized"}),
            "2025.4.4",
        );
        assert!(matches!(e, HaError::NotAdmin { .. }));
        let e = command_error(
            "x/y".into(),
            &json!({"code": "unknown_command", "message": "Unknown command."}),
            "2025.4.4",
        );
        assert_eq!(
            e.to_string(),
            "HA 2025.4.4 does not know the command x/y (is its recorder enabled?)"
        );
        let e = command_error(
            "recorder/import_statistics".into(),
            &json!({"code": "home_assistant_error", "message": "Invalid statistic_id\nmore"}),
            "2025.4.4",
        );
        assert_eq!(
            e.to_string(),
            "HA refused recorder/import_statistics: Invalid statistic_id more (home_assistant_error)"
        );
    }
}
