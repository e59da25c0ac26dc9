//! Onboarding the owner user, minting the long-lived token, waiting for RUNNING: over HA's
//! HTTP API and just enough of its websocket API.

use super::START_TIMEOUT;
use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const USERNAME: &str = "pwsync";
const PASSWORD: &str = "pwsync-test-password";
/// The long-lived token's client name, as HA stores it in `.storage/auth`.
pub(super) const TOKEN_CLIENT_NAME: &str = "pwsync-tests";

pub(super) fn http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Onboard the owner (once per config dir), mint a long-lived token, wait for RUNNING.
/// Returns (token, version).
pub(super) async fn onboard_and_wait(base: String) -> Result<(String, String)> {
    let client = http()?;
    let client_id = format!("{base}/");
    let resp = client
        .post(format!("{base}/api/onboarding/users"))
        .json(&json!({
            "client_id": client_id,
            "name": "pwsync",
            "username": USERNAME,
            "password": PASSWORD,
            "language": "en",
        }))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("onboarding the owner failed: {status} {body}");
    }
    let code = body["auth_code"]
        .as_str()
        .context("onboarding reply has no auth_code")?;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("client_id", &client_id)
        .finish();
    let resp = client
        .post(format!("{base}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let access = body["access_token"]
        .as_str()
        .with_context(|| format!("/auth/token failed: {status} {body}"))?;
    let ws_url = format!("{}/api/websocket", base.replacen("http", "ws", 1));
    let mut ws = Ws::connect(&ws_url, access).await?;
    let token = ws
        .call(json!({
            "type": "auth/long_lived_access_token",
            "client_name": TOKEN_CLIENT_NAME,
            "lifespan": 3650,
        }))
        .await?;
    let token = token
        .as_str()
        .context("long-lived token reply is not a string")?
        .to_string();
    drop(ws);
    let version = wait_running(ws_url, token.clone()).await?;
    Ok((token, version))
}

/// Wait until `get_config` says RUNNING; returns HA's version.
pub(super) async fn wait_running(ws_url: String, token: String) -> Result<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut ws = loop {
        match Ws::connect(&ws_url, &token).await {
            Ok(ws) => break ws,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    loop {
        let config = ws.call(json!({"type": "get_config"})).await?;
        if config["state"] == "RUNNING" {
            return Ok(config["version"].as_str().unwrap_or_default().to_string());
        }
        if Instant::now() > deadline {
            bail!("HA's core did not reach RUNNING: {}", config["state"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Just enough of HA's websocket API for the harness (the product's client is `pwsync-ha`).
struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Ws {
    async fn connect(url: &str, token: &str) -> Result<Ws> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        let mut ws = Ws { stream, next_id: 1 };
        let hello = ws.recv().await?;
        if hello["type"] != "auth_required" {
            bail!("unexpected first message: {hello}");
        }
        ws.send(json!({"type": "auth", "access_token": token}))
            .await?;
        let reply = ws.recv().await?;
        if reply["type"] != "auth_ok" {
            bail!("HA refused the token: {reply}");
        }
        Ok(ws)
    }

    async fn send(&mut self, v: Value) -> Result<()> {
        self.stream.send(Message::Text(v.to_string())).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Value> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
                Some(Ok(Message::Close(_))) | None => bail!("HA closed the websocket"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    async fn call(&mut self, mut msg: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        msg["id"] = json!(id);
        let what = msg["type"].clone();
        self.send(msg).await?;
        loop {
            let reply = self.recv().await?;
            if reply["id"] == json!(id) && reply["type"] == "result" {
                if reply["success"] == true {
                    return Ok(reply["result"].clone());
                }
                bail!("{what} failed: {}", reply["error"]);
            }
        }
    }
}
