//! Which names the panel answers to, and whether a form was sent from the panel's own pages.
//!
//! DNS rebinding lets a page on another site point its own name at 127.0.0.1 and read the
//! panel as if it were that site; the browser still sends that site's name as `Host`. So only
//! names the panel listens as are served: `localhost`, the address the connection came in on
//! (the `web.listen` address, or the loopback or LAN address a wildcard listen was reached
//! at), and the names in `web.hosts`. A name is never an address, so an address the
//! connection really came in on cannot be a rebound name.
//!
//! A POST whose `Origin` (or, without one, `Referer`) names another origin than the request's
//! own `Host` was sent by another site's page and is refused before its CSRF token is looked
//! at. Clients that send neither (curl, scripts) still need the token.

use std::net::{IpAddr, SocketAddr};

/// A `Host` value, or an entry of `web.hosts`: a name (lowercase, no trailing dot) or an IP
/// address, and maybe a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    name: String,
    port: Option<u16>,
}

/// An entry of `web.hosts` that is not a host name or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("web.hosts: '{0}' is not a host name: write a name or name:port, e.g. \"pwsync.lan\" or \"pwsync.lan:8099\"")]
pub struct BadHost(pub String);

impl HostPort {
    /// `name`, `name:port`, `1.2.3.4:port`, `[::1]:port`; nothing else (no scheme, path or
    /// user).
    pub fn parse(s: &str) -> Option<HostPort> {
        let (name, port) = match s.strip_prefix('[') {
            Some(rest) => {
                let (v6, after) = rest.split_once(']')?;
                (v6.parse::<std::net::Ipv6Addr>().ok()?.to_string(), after)
            }
            None => {
                let (name, after) = s.split_at(s.find(':').unwrap_or(s.len()));
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let label_ok = |l: &str| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                };
                if !name.split('.').all(label_ok) {
                    return None;
                }
                (name, after)
            }
        };
        let port = match port {
            "" => None,
            p => {
                let digits = p.strip_prefix(':')?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some(digits.parse::<u16>().ok()?)
            }
        };
        Some(HostPort { name, port })
    }

    fn ip(&self) -> Option<IpAddr> {
        self.name.parse().ok()
    }

    /// The same host, with `port` when the value names none (`Host: a` means a's default port).
    fn port_or(&self, default: u16) -> u16 {
        self.port.unwrap_or(default)
    }
}

/// The names the panel answers to besides its own addresses: `web.hosts`.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    extra: Vec<HostPort>,
}

impl Hosts {
    /// `web.hosts`: each a name (any port) or `name:port` (that port only).
    pub fn new<S: AsRef<str>>(extra: impl IntoIterator<Item = S>) -> Result<Hosts, BadHost> {
        let extra = extra
            .into_iter()
            .map(|s| {
                let s = s.as_ref().trim();
                HostPort::parse(s).ok_or_else(|| BadHost(s.escape_debug().to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Hosts { extra })
    }

    /// Whether `host` (the request's `Host`) names this panel, reached at `local` (the address
    /// and port the connection came in on). Without a port, any port: a local reverse proxy
    /// may forward `Host: localhost`.
    pub fn admits(&self, host: &str, local: SocketAddr) -> bool {
        let Some(h) = HostPort::parse(host) else {
            return false;
        };
        let port_ok = h.port.is_none_or(|p| p == local.port());
        let own = match h.ip() {
            Some(ip) => same_ip(ip, local.ip()),
            None => h.name == "localhost" && local.ip().is_loopback(),
        };
        (own && port_ok)
            || self
                .extra
                .iter()
                .any(|e| e.name == h.name && (e.port.is_none() || e.port == h.port))
    }
}

/// `::ffff:127.0.0.1` (a v4 connection to a dual-stack listener) is 127.0.0.1.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    canon(a) == canon(b)
}

/// Whether a POST's sender is one of `own` (the request's `Host`, and behind HA's ingress the
/// names HA forwarded it for). `origin` is the `Origin` header, else `referer` the `Referer`;
/// without either the sender is unknown and the CSRF token alone decides.
pub fn same_origin(origin: Option<&str>, referer: Option<&str>, own: &[&str]) -> bool {
    let sender = match (origin, referer) {
        (Some(o), _) => o,
        (None, Some(r)) => r,
        (None, None) => return true,
    };
    // `Origin: null` (a sandboxed frame, a file) and anything unparsable is another origin.
    let Ok(url) = url::Url::parse(sender.trim()) else {
        return false;
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    let Some(sender) = HostPort::parse(host) else {
        return false;
    };
    own.iter()
        .filter_map(|h| HostPort::parse(h.trim()))
        .any(|h| h.name == sender.name && h.port_or(port) == port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_values_parse_like_browsers_send_them() {
        let hp = |s| HostPort::parse(s).map(|h| (h.name, h.port));
        assert_eq!(hp("LocalHost:8099"), Some(("localhost".into(), Some(8099))));
        assert_eq!(hp("pwsync.lan."), Some(("pwsync.lan".into(), None)));
        assert_eq!(hp("[::1]:8099"), Some(("::1".into(), Some(8099))));
        assert_eq!(hp("127.0.0.1"), Some(("127.0.0.1".into(), None)));
        for bad in [
            "",
            "http://pwsync.lan",
            "pwsync.lan/x",
            "user@pwsync.lan",
            "pwsync.lan:",
            "pwsync.lan:99999",
            "pwsync lan",
            "[zz]:1",
            "a..b",
        ] {
            assert_eq!(hp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_panels_own_addresses_and_loopback_names_are_served() {
        let h = Hosts::default();
        let lo = at("127.0.0.1:8099");
        for ok in ["127.0.0.1:8099", "localhost:8099", "localhost", "127.0.0.1"] {
            assert!(h.admits(ok, lo), "{ok}");
        }
        // A rebound name, another port, another address, garbage.
        for bad in [
            "attacker.example:8099",
            "attacker.example",
            "localhost:8100",
            "127.0.0.2:8099",
            "192.168.1.5:8099",
            "",
            "localhost:8099/x",
        ] {
            assert!(!h.admits(bad, lo), "{bad}");
        }
        assert!(h.admits("[::1]:8099", at("[::1]:8099")));
        assert!(h.admits("localhost:8099", at("[::1]:8099")));
        assert!(h.admits("127.0.0.1:8099", at("[::ffff:127.0.0.1]:8099")));
        // A wildcard listen reached at its LAN address: that address, not a name for it.
        let lan = at("192.168.1.5:8099");
        assert!(h.admits("192.168.1.5:8099", lan));
        assert!(!h.admits("nas.lan:8099", lan));
        assert!(!h.admits("localhost:8099", lan));
    }

    #[test]
    fn web_hosts_adds_names_with_any_port_or_one() {
        let h = Hosts::new(["NAS.lan", "pwsync.example:443"]).unwrap();
        let lan = at("192.168.1.5:8099");
        assert!(h.admits("nas.lan:8099", lan));
        assert!(h.admits("nas.lan", lan));
        assert!(h.admits("pwsync.example:443", lan));
        assert!(!h.admits("pwsync.example:8099", lan));
        assert!(!h.admits("pwsync.example", lan));
        assert!(!h.admits("evil.lan", lan));
        let e = Hosts::new(["nas.lan", "http://nas.lan/"]).unwrap_err();
        assert!(e.to_string().contains("'http://nas.lan/'"), "{e}");
        assert!(e.to_string().contains("web.hosts"), "{e}");
    }

    #[test]
    fn a_post_from_another_origin_is_told_apart_from_the_panels_own() {
        let own = ["127.0.0.1:8099"];
        assert!(same_origin(Some("http://127.0.0.1:8099"), None, &own));
        assert!(same_origin(
            None,
            Some("http://127.0.0.1:8099/jobs?x=1"),
            &own
        ));
        assert!(
            same_origin(None, None, &own),
            "no header: the token decides"
        );
        for bad in [
            "http://attacker.example:8099",
            "http://127.0.0.1:8100",
            "null",
            "not a url",
            "file:///tmp/x.html",
        ] {
            assert!(!same_origin(Some(bad), None, &own), "{bad}");
            assert!(!same_origin(None, Some(bad), &own), "{bad}");
        }
        // Origin wins over Referer.
        assert!(!same_origin(
            Some("http://attacker.example"),
            Some("http://127.0.0.1:8099/jobs"),
            &own
        ));
        // Default ports: Host without a port is the scheme's default.
        assert!(same_origin(
            Some("https://ha.example"),
            None,
            &["ha.example"]
        ));
        assert!(same_origin(
            Some("https://ha.example"),
            None,
            &["ha.example:443"]
        ));
        assert!(!same_origin(
            Some("http://ha.example"),
            None,
            &["ha.example:443"]
        ));
        // Behind HA's ingress: HA's own name, as Host or as X-Forwarded-Host.
        let ingress = ["172.30.33.4:8099", "homeassistant.local:8123"];
        assert!(same_origin(
            Some("http://homeassistant.local:8123"),
            None,
            &ingress
        ));
        assert!(!same_origin(Some("http://evil.example"), None, &ingress));
    }
}
