//! Who may use the panel, and the CSRF token of its forms.
//!
//! - Behind HA's ingress (the add-on), only the Supervisor's ingress proxy may connect: HA has
//!   already authenticated the person.
//! - With a token (`web.token`), every request carries it: `Authorization: Bearer`, or the
//!   `token` query parameter once (it becomes an HttpOnly cookie).
//! - Without either, the panel listens on loopback only; `serve` refuses another address.
//! - Whatever the mode, a request must name the panel as its `Host` (see [`crate::host`]):
//!   another site's page that rebinds its own name to 127.0.0.1 is turned away. Behind the
//!   ingress proxy any `Host` is served (HA forwards the browser's).
//! - A POST sent from another origin (`Origin`, else `Referer`) is refused.
//!
//! Forms carry a per-process random token, checked on every POST: another site open in the
//! same browser cannot start a job through it.

use crate::host::{same_origin, Hosts};
use std::net::{IpAddr, SocketAddr};

pub const TOKEN_COOKIE: &str = "pwsync_token";

/// The panel's access rules.
#[derive(Clone)]
pub struct Access {
    token: Option<String>,
    ingress_proxy: Option<IpAddr>,
    hosts: Hosts,
    csrf: String,
}

/// What of a request the access rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    /// Who connected.
    pub peer: IpAddr,
    /// The address and port the connection came in on.
    pub local: SocketAddr,
    /// `Host`.
    pub host: Option<&'a str>,
    /// A POST (it changes state) rather than a GET.
    pub post: bool,
    pub origin: Option<&'a str>,
    pub referer: Option<&'a str>,
    /// `X-Forwarded-Host`: HA's own name, trusted only from the ingress proxy.
    pub forwarded_host: Option<&'a str>,
    pub bearer: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub query: Option<&'a str>,
}

/// Why a request is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A token is required and the request has none, or a wrong one.
    Token,
    /// Ingress mode, and the request does not come from the ingress proxy.
    NotIngress,
    /// `Host` is not a name the panel listens as (DNS rebinding, or a name missing from
    /// `web.hosts`).
    Host,
    /// A POST sent from another origin's page.
    CrossOrigin,
}

impl std::fmt::Debug for Access {
    // The tokens are secrets: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("ingress_proxy", &self.ingress_proxy)
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl Access {
    /// `token`: required on every request when set (an empty one counts as unset).
    /// `ingress_proxy`: the only peer allowed, when set. `hosts`: the names besides its own
    /// addresses the panel answers to (`web.hosts`).
    pub fn new(token: Option<String>, ingress_proxy: Option<IpAddr>, hosts: Hosts) -> Access {
        Access {
            token: token.filter(|t| !t.is_empty()),
            ingress_proxy,
            hosts,
            csrf: random_hex(32),
        }
    }

    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// The token the page's forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    pub fn csrf_ok(&self, sent: &str) -> bool {
        constant_time_eq(sent.as_bytes(), self.csrf.as_bytes())
    }

    /// Whether a request may in: from the ingress proxy when there is one, else under a name
    /// the panel listens as; with the token when one is set; a POST from the panel's own
    /// origin or from no page at all. The CSRF token is the route's to check, after this.
    pub fn admit(&self, v: &Visit) -> Result<(), Refusal> {
        let from_proxy = match self.ingress_proxy {
            Some(proxy) if v.peer != proxy => return Err(Refusal::NotIngress),
            Some(_) => true,
            None => false,
        };
        let host = v.host.unwrap_or("");
        if !from_proxy && !self.hosts.admits(host, v.local) {
            return Err(Refusal::Host);
        }
        if let Some(t) = &self.token {
            let ok = [v.bearer, v.cookie, v.query]
                .into_iter()
                .flatten()
                .any(|sent| constant_time_eq(sent.as_bytes(), t.as_bytes()));
            if !ok {
                return Err(Refusal::Token);
            }
        }
        if v.post {
            let mut own = vec![host];
            if from_proxy {
                own.extend(v.forwarded_host.into_iter().flat_map(|f| f.split(',')));
            }
            if !same_origin(v.origin, v.referer, &own) {
                return Err(Refusal::CrossOrigin);
            }
        }
        Ok(())
    }
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Equal, in a time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const PROXY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(172, 30, 32, 2));

    /// A GET of the panel at 127.0.0.1:8099 from the same machine, by its own name.
    fn get() -> Visit<'static> {
        Visit {
            peer: LOOPBACK,
            local: "127.0.0.1:8099".parse().unwrap(),
            host: Some("127.0.0.1:8099"),
            post: false,
            origin: None,
            referer: None,
            forwarded_host: None,
            bearer: None,
            cookie: None,
            query: None,
        }
    }

    fn open() -> Access {
        Access::new(None, None, Hosts::default())
    }

    #[test]
    fn without_a_token_anyone_who_reaches_it_by_its_name_is_admitted() {
        let a = open();
        assert_eq!(a.admit(&get()), Ok(()));
        assert!(!a.token_required());
        assert!(!Access::new(Some(String::new()), None, Hosts::default()).token_required());
    }

    #[test]
    fn a_token_is_required_in_a_header_cookie_or_query() {
        let a = Access::new(Some("s3cret".into()), None, Hosts::default());
        let v = get();
        assert_eq!(a.admit(&v), Err(Refusal::Token));
        let wrong = Visit {
            bearer: Some("wrong"),
            ..v
        };
        assert_eq!(a.admit(&wrong), Err(Refusal::Token));
        for ok in [
            Visit {
                bearer: Some("s3cret"),
                ..v
            },
            Visit {
                cookie: Some("s3cret"),
                ..v
            },
            Visit {
                query: Some("s3cret"),
                ..v
            },
        ] {
            assert_eq!(a.admit(&ok), Ok(()));
        }
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn ingress_mode_admits_only_the_proxy_under_whatever_host_it_forwards() {
        let a = Access::new(None, Some(PROXY), Hosts::default());
        let from_proxy = Visit {
            peer: PROXY,
            local: "172.30.33.4:8099".parse().unwrap(),
            host: Some("homeassistant.local:8123"),
            ..get()
        };
        assert_eq!(a.admit(&from_proxy), Ok(()));
        assert_eq!(
            a.admit(&Visit {
                host: None,
                ..from_proxy
            }),
            Ok(())
        );
        assert_eq!(a.admit(&get()), Err(Refusal::NotIngress));
        // HA's page posting through the proxy; HA's name as Host, or only forwarded.
        let post = Visit {
            post: true,
            origin: Some("http://homeassistant.local:8123"),
            ..from_proxy
        };
        assert_eq!(a.admit(&post), Ok(()));
        let rewritten = Visit {
            host: Some("172.30.33.4:8099"),
            forwarded_host: Some("homeassistant.local:8123"),
            ..post
        };
        assert_eq!(a.admit(&rewritten), Ok(()));
        let forged = Visit {
            origin: Some("http://evil.example"),
            ..rewritten
        };
        assert_eq!(a.admit(&forged), Err(Refusal::CrossOrigin));
    }

    #[test]
    fn a_rebound_name_is_refused_before_anything_else() {
        let a = open();
        let rebound = Visit {
            host: Some("attacker.example:8099"),
            ..get()
        };
        assert_eq!(a.admit(&rebound), Err(Refusal::Host));
        assert_eq!(
            a.admit(&Visit {
                host: None,
                ..get()
            }),
            Err(Refusal::Host)
        );
        // Even with the right token: the name is checked first, a token does not bless it.
        let t = Access::new(Some("s3cret".into()), None, Hosts::default());
        let with_token = Visit {
            bearer: Some("s3cret"),
            ..rebound
        };
        assert_eq!(t.admit(&with_token), Err(Refusal::Host));
        // Named in web.hosts, it is served.
        let named = Access::new(None, None, Hosts::new(["attacker.example"]).unwrap());
        assert_eq!(named.admit(&rebound), Ok(()));
        // The forwarded name counts only from the ingress proxy.
        let forwarded = Visit {
            post: true,
            origin: Some("http://ha.example"),
            forwarded_host: Some("ha.example"),
            ..get()
        };
        assert_eq!(a.admit(&forwarded), Err(Refusal::CrossOrigin));
    }

    #[test]
    fn a_post_from_another_site_is_refused_and_one_without_origin_is_not() {
        let a = open();
        let post = Visit {
            post: true,
            ..get()
        };
        assert_eq!(a.admit(&post), Ok(()), "curl: no Origin, no Referer");
        let own = Visit {
            origin: Some("http://127.0.0.1:8099"),
            ..post
        };
        assert_eq!(a.admit(&own), Ok(()));
        let cross = Visit {
            origin: Some("http://attacker.example"),
            ..post
        };
        assert_eq!(a.admit(&cross), Err(Refusal::CrossOrigin));
        let cross_referer = Visit {
            referer: Some("http://attacker.example/page.html"),
            ..post
        };
        assert_eq!(a.admit(&cross_referer), Err(Refusal::CrossOrigin));
        // A GET is not state-changing: a link from another site still opens the panel.
        assert_eq!(
            a.admit(&Visit {
                post: false,
                ..cross
            }),
            Ok(())
        );
    }

    #[test]
    fn the_csrf_token_is_random_and_checked_whole() {
        let (a, b) = (open(), open());
        assert_ne!(a.csrf(), b.csrf());
        assert_eq!(a.csrf().len(), 64);
        assert!(a.csrf_ok(a.csrf()));
        assert!(!a.csrf_ok(b.csrf()));
        assert!(!a.csrf_ok(&a.csrf()[..63]));
        assert!(!a.csrf_ok(""));
    }
}
