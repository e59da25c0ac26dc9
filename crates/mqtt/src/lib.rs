//! pwsync's MQTT adapter: one broker connection that keeps itself up, and the payloads of HA's
//! MQTT discovery.
//!
//! [`Mqtt::connect`] returns only once the broker accepted the connection (or with a one-line
//! error saying why not: refused credentials, unreachable broker). After that a background task
//! keeps polling the connection; when it drops it reconnects with backoff (1 s doubling to 60 s)
//! and reports [`Incoming::Connected`] again, so the caller republishes and resubscribes.
//!
//! Every packet the broker can send is read (the incoming limit is MQTT's own maximum): a
//! client that refuses a packet has to drop the connection, and a retained message over the
//! limit would then come back with every resubscription, a reconnect loop. What is too big for
//! a topic is for the caller to drop.

pub mod discovery;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS,
};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("invalid MQTT broker URL '{url}': {reason} (expected mqtt://host:1883)")]
    BadUrl { url: String, reason: String },
    #[error("the MQTT broker at {broker} refused the login ({code}): check mqtt.username and mqtt.password")]
    Refused { broker: String, code: String },
    #[error("cannot reach the MQTT broker at {broker}: {reason}")]
    Unreachable { broker: String, reason: String },
    #[error("TLS for the MQTT broker {url}: {reason}")]
    Tls { url: String, reason: String },
    #[error("the MQTT connection is closed: {0}")]
    Closed(String),
}

/// How to reach the broker.
#[derive(Clone)]
pub struct MqttSettings {
    /// `mqtt://host[:port]` or `mqtts://host[:port]` (with the `tls` feature, on by default).
    pub url: String,
    /// mqtts: PEM file of the CA that signed the broker's certificate (a broker with its own
    /// CA, as on most home networks); `None`: the system's trusted roots.
    pub ca_file: Option<std::path::PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: String,
    /// The user chose `client_id` (it is not unique per process): when the broker closes the
    /// connection, another client with the same id is the likely cause, and the log says so.
    pub configured_client_id: bool,
    /// Published by the broker (retained) when pwsync disappears without saying goodbye.
    pub will: Option<(String, String)>,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("url", &shown(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("client_id", &self.client_id)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What the connection task reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// (Re)connected: publish the discovery configs and subscribe again.
    Connected,
    Message {
        topic: String,
        payload: String,
        retained: bool,
    },
}

/// A live broker connection.
pub struct Mqtt {
    client: AsyncClient,
    rx: mpsc::Receiver<Incoming>,
    task: JoinHandle<()>,
    broker: String,
}

/// The largest packet body MQTT can encode (a four-byte remaining length): with it as the
/// incoming limit no packet the broker sends can fail the connection.
const MQTT_MAX_REMAINING_LENGTH: usize = 268_435_455;

/// `url` as messages show it.
fn shown(url: &str) -> String {
    pwsync_redact::url(url)
}

/// `host:port` of a broker URL (1883 for mqtt://, 8883 for mqtts://).
pub fn broker_address(url: &str) -> Result<String, MqttError> {
    let (host, port, _) = parse_url(url)?;
    Ok(format!("{host}:{port}"))
}

/// `(host, port, tls)` of a broker URL.
fn parse_url(url: &str) -> Result<(String, u16, bool), MqttError> {
    let bad = |reason: &str| MqttError::BadUrl {
        url: shown(url),
        reason: reason.to_string(),
    };
    let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let tls = match u.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        s => return Err(bad(&format!("unknown scheme '{s}'"))),
    };
    let host = u.host_str().ok_or_else(|| bad("no host"))?.to_string();
    let port = u.port().unwrap_or(if tls { 8883 } else { 1883 });
    Ok((host, port, tls))
}

/// User and password written into the URL (`mqtt://user:password@host`), percent-decoded.
fn url_login(url: &str) -> Option<(String, String)> {
    let u = url::Url::parse(url).ok()?;
    if u.username().is_empty() {
        return None;
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(u.username()), decode(u.password().unwrap_or(""))))
}

fn options(s: &MqttSettings) -> Result<(MqttOptions, String), MqttError> {
    let (host, port, tls) = parse_url(&s.url)?;
    let broker = format!("{host}:{port}");
    let mut o = MqttOptions::new(&s.client_id, host, port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(MQTT_MAX_REMAINING_LENGTH, 1 << 20);
    match (&s.username, url_login(&s.url)) {
        (Some(user), _) => {
            o.set_credentials(user, s.password.clone().unwrap_or_default());
        }
        (None, Some((user, password))) => {
            o.set_credentials(user, password);
        }
        (None, None) => {}
    }
    if let Some((topic, payload)) = &s.will {
        o.set_last_will(LastWill::new(
            topic,
            payload.clone(),
            QoS::AtLeastOnce,
            true,
        ));
    }
    if tls {
        enable_tls(&mut o, s)?;
    }
    Ok((o, broker))
}

#[cfg(feature = "tls")]
fn enable_tls(o: &mut MqttOptions, s: &MqttSettings) -> Result<(), MqttError> {
    let transport = match &s.ca_file {
        Some(path) => {
            let ca = std::fs::read(path).map_err(|e| MqttError::Tls {
                url: shown(&s.url),
                reason: format!("cannot read mqtt.ca_file {}: {e}", path.display()),
            })?;
            if !String::from_utf8_lossy(&ca).contains("-----BEGIN CERTIFICATE-----") {
                return Err(MqttError::Tls {
                    url: shown(&s.url),
                    reason: format!(
                        "mqtt.ca_file {} holds no PEM certificate: give the broker's CA \
                         certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    ),
                });
            }
            rumqttc::Transport::tls(ca, None, None)
        }
        None => rumqttc::Transport::tls_with_config(system_roots(&shown(&s.url))?),
    };
    o.set_transport(transport);
    Ok(())
}

/// The system's trusted roots (rumqttc's default panics when they cannot be read).
#[cfg(feature = "tls")]
fn system_roots(url: &str) -> Result<rumqttc::TlsConfiguration, MqttError> {
    let certs = rustls_native_certs::load_native_certs().map_err(|e| MqttError::Tls {
        url: url.to_string(),
        reason: format!("cannot read the system's CA certificates ({e}): set mqtt.ca_file"),
    })?;
    let mut roots = rumqttc::tokio_rustls::rustls::RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(certs);
    let config = rumqttc::tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config.into())
}

#[cfg(not(feature = "tls"))]
fn enable_tls(_o: &mut MqttOptions, s: &MqttSettings) -> Result<(), MqttError> {
    Err(MqttError::BadUrl {
        url: shown(&s.url),
        reason: "this pwsync was built without TLS: rebuild with the pwsync-mqtt/tls feature or use mqtt://".into(),
    })
}

fn describe(e: &ConnectionError, broker: &str) -> MqttError {
    match e {
        ConnectionError::ConnectionRefused(code) => MqttError::Refused {
            broker: broker.to_string(),
            code: match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password".into(),
                ConnectReturnCode::NotAuthorized => "not authorized".into(),
                other => format!("{other:?}"),
            },
        },
        ConnectionError::Tls(e) => MqttError::Tls {
            url: broker.to_string(),
            reason: format!(
                "{e}: set mqtt.ca_file to the CA that signed the broker's certificate, and use \
                 a host name (or IP) the certificate names"
            ),
        },
        other => MqttError::Unreachable {
            broker: broker.to_string(),
            reason: other.to_string(),
        },
    }
}

impl Mqtt {
    /// Connect and wait for the broker's answer (at most `connect_timeout`).
    pub async fn connect(s: &MqttSettings) -> Result<Mqtt, MqttError> {
        let (opts, broker) = options(s)?;
        let (client, mut eventloop) = AsyncClient::new(opts, 256);
        // The first answer decides: accepted, refused or unreachable.
        let first = tokio::time::timeout(s.connect_timeout, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => continue,
                    Err(e) => return Err(describe(&e, &broker)),
                }
            }
        })
        .await
        .map_err(|_| MqttError::Unreachable {
            broker: broker.clone(),
            reason: format!("no answer within {} s", s.connect_timeout.as_secs()),
        })?;
        first?;
        tracing::info!(
            "connected to the MQTT broker at {broker} as client {}",
            s.client_id
        );
        let (tx, rx) = mpsc::channel(1024);
        let _ = tx.try_send(Incoming::Connected);
        let link = Link {
            broker: broker.clone(),
            client_id: s.client_id.clone(),
            configured_client_id: s.configured_client_id,
        };
        let task = tokio::spawn(drive(eventloop, tx, link));
        Ok(Mqtt {
            client,
            rx,
            task,
            broker,
        })
    }

    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        retain: bool,
    ) -> Result<(), MqttError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|e| MqttError::Closed(e.to_string()))
    }

    pub async fn subscribe(&self, filter: &str) -> Result<(), MqttError> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| MqttError::Closed(e.to_string()))
    }

    pub async fn unsubscribe(&self, filter: &str) -> Result<(), MqttError> {
        self.client
            .unsubscribe(filter)
            .await
            .map_err(|e| MqttError::Closed(e.to_string()))
    }

    /// The next event, or `None` when `wait` passes without one.
    pub async fn next(&mut self, wait: Duration) -> Option<Incoming> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// Say goodbye (no last will) once everything queued is sent.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        // Let the event loop flush the queue and the DISCONNECT.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// Who is connected where, for the log lines of a dropped connection.
struct Link {
    broker: String,
    client_id: String,
    configured_client_id: bool,
}

impl Link {
    /// Why the connection dropped, in words, and when pwsync tries again.
    fn lost(&self, e: &ConnectionError, retry: Duration) -> String {
        let (broker, secs) = (&self.broker, retry.as_secs());
        if !closed_by_broker(e) {
            return format!(
                "MQTT connection lost ({}); reconnecting in {secs} s",
                describe(e, broker)
            );
        }
        if self.configured_client_id {
            // Brokers close the older connection when a second client logs in under its id.
            format!(
                "the MQTT broker at {broker} closed the connection: most likely another client \
                 connected with the same client id {:?} (mqtt.client_id); give each pwsync its \
                 own id, or leave mqtt.client_id unset; reconnecting in {secs} s",
                self.client_id
            )
        } else {
            format!("the MQTT broker at {broker} closed the connection; reconnecting in {secs} s")
        }
    }
}

/// The broker ended the connection in an orderly way (end of stream, no half-read packet).
fn closed_by_broker(e: &ConnectionError) -> bool {
    let io = match e {
        ConnectionError::MqttState(rumqttc::StateError::Io(io)) | ConnectionError::Io(io) => io,
        _ => return false,
    };
    io.kind() == std::io::ErrorKind::ConnectionAborted
}

/// Poll the connection for as long as the client lives; reconnect with backoff.
async fn drive(mut eventloop: rumqttc::EventLoop, tx: mpsc::Sender<Incoming>, link: Link) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_secs(1);
                tracing::info!("MQTT connected again to {}", link.broker);
                let _ = tx.send(Incoming::Connected).await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let msg = Incoming::Message {
                    topic: p.topic.clone(),
                    payload: String::from_utf8_lossy(&p.payload).into_owned(),
                    retained: p.retain,
                };
                let _ = tx.send(msg).await;
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                // Keep polling until the socket is flushed and closed: returning now would drop
                // the queued packets (and the broker would publish the last will).
                let _ = tokio::time::timeout(Duration::from_secs(3), async {
                    while eventloop.poll().await.is_ok() {}
                })
                .await;
                return;
            }
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                tracing::warn!("{}", link.lost(&e, backoff));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://broker.lan").unwrap(),
            ("broker.lan".into(), 1883, false)
        );
        assert_eq!(
            parse_url("mqtts://b:8884").unwrap(),
            ("b".into(), 8884, true)
        );
        assert!(matches!(
            parse_url("http://b"),
            Err(MqttError::BadUrl { .. })
        ));
        assert!(parse_url("nonsense").is_err());
        assert_eq!(broker_address("mqtts://b").unwrap(), "b:8883");
    }

    #[test]
    fn a_connection_the_broker_closed_names_the_likely_cause_only_for_a_fixed_id() {
        let closed = || {
            ConnectionError::MqttState(rumqttc::StateError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection closed by peer",
            )))
        };
        let mut link = Link {
            broker: "b:1883".into(),
            client_id: "garage".into(),
            configured_client_id: true,
        };
        let retry = Duration::from_secs(4);
        let fixed = link.lost(&closed(), retry);
        assert!(
            fixed.contains("another client connected with the same client id \"garage\"")
                && fixed.contains("reconnecting in 4 s"),
            "{fixed}"
        );
        link.configured_client_id = false;
        let own = link.lost(&closed(), retry);
        assert!(
            !own.contains("same client id") && own.contains("closed the connection"),
            "{own}"
        );
        let other = link.lost(&ConnectionError::NetworkTimeout, retry);
        assert!(
            other.starts_with("MQTT connection lost") && other.contains("reconnecting"),
            "{other}"
        );
    }

    #[test]
    fn a_password_in_the_url_logs_in_and_never_shows() {
        let url = "mqtt://ha%20user:p%40ss@broker.lan:1884";
        assert_eq!(
            url_login(url),
            Some(("ha user".to_string(), "p@ss".to_string()))
        );
        assert_eq!(url_login("mqtt://broker.lan"), None);
        assert_eq!(shown(url), "mqtt://ha%20user:***@broker.lan:1884");
        let err = parse_url("gopher://u:hunter2@b").unwrap_err().to_string();
        assert!(!err.contains("hunter2") && err.contains("***"), "{err}");
        assert!(!shown("::u:hunter2@b").contains("hunter2"));
    }
}
