//! One plain HTTP GET on loopback, enough to ask a server we started whether it answers as
//! itself (InfluxDB's `/ping`, HA's `/api/onboarding`) without an HTTP client crate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response: status code, header lines (as sent), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<String>,
    pub body: String,
}

impl Response {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0, the server closes after answering); `None` when
/// nothing answers with HTTP within `timeout`.
pub fn get(port: u16, path: &str, timeout: Duration) -> Option<Response> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    Some(Response {
        status,
        headers: lines.map(str::to_string).collect(),
        body: body.to_string(),
    })
}
