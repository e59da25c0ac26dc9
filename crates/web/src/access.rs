//! Who may use the panel, and the CSRF token of its forms.
//!
//! - Behind HA's ingress (the add-on), only the Supervisor's ingress proxy may connect: HA has
//!   already authenticated the person.
//! - With a token (`web.token`), every request carries it: `Authorization: Bearer`, or the
//!   `token` query parameter once (it becomes an HttpOnly cookie).
//! - Without either, the panel listens on loopback only; `serve` refuses another address.
//!
//! Forms carry a per-process random token, checked on every POST: another site open in the
//! same browser cannot start a job through it.

use std::net::IpAddr;

pub const TOKEN_COOKIE: &str = "pwsync_token";

/// The panel's access rules.
#[derive(Clone)]
pub struct Access {
    token: Option<String>,
    ingress_proxy: Option<IpAddr>,
    csrf: String,
}

/// Why a request is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A token is required and the request has none, or a wrong one.
    Token,
    /// Ingress mode, and the request does not come from the ingress proxy.
    NotIngress,
}

impl std::fmt::Debug for Access {
    // The tokens are secrets: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("ingress_proxy", &self.ingress_proxy)
            .finish()
    }
}

impl Access {
    /// `token`: required on every request when set (an empty one counts as unset).
    /// `ingress_proxy`: the only peer allowed, when set.
    pub fn new(token: Option<String>, ingress_proxy: Option<IpAddr>) -> Access {
        Access {
            token: token.filter(|t| !t.is_empty()),
            ingress_proxy,
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

    /// Whether a request from `peer` with these credentials may in.
    pub fn admit(
        &self,
        peer: IpAddr,
        bearer: Option<&str>,
        cookie: Option<&str>,
        query: Option<&str>,
    ) -> Result<(), Refusal> {
        if let Some(proxy) = self.ingress_proxy {
            if peer != proxy {
                return Err(Refusal::NotIngress);
            }
        }
        match &self.token {
            None => Ok(()),
            Some(t) => {
                let ok = [bearer, cookie, query]
                    .into_iter()
                    .flatten()
                    .any(|sent| constant_time_eq(sent.as_bytes(), t.as_bytes()));
                ok.then_some(()).ok_or(Refusal::Token)
            }
        }
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

    #[test]
    fn without_a_token_anyone_who_reaches_it_is_admitted() {
        let a = Access::new(None, None);
        assert_eq!(a.admit(LOOPBACK, None, None, None), Ok(()));
        assert!(!a.token_required());
        assert!(!Access::new(Some(String::new()), None).token_required());
    }

    #[test]
    fn a_token_is_required_in_a_header_cookie_or_query() {
        let a = Access::new(Some("s3cret".into()), None);
        assert_eq!(a.admit(LOOPBACK, None, None, None), Err(Refusal::Token));
        assert_eq!(
            a.admit(LOOPBACK, Some("wrong"), None, None),
            Err(Refusal::Token)
        );
        assert_eq!(a.admit(LOOPBACK, Some("s3cret"), None, None), Ok(()));
        assert_eq!(a.admit(LOOPBACK, None, Some("s3cret"), None), Ok(()));
        assert_eq!(a.admit(LOOPBACK, None, None, Some("s3cret")), Ok(()));
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn ingress_mode_admits_only_the_proxy() {
        let a = Access::new(None, Some(PROXY));
        assert_eq!(a.admit(PROXY, None, None, None), Ok(()));
        assert_eq!(
            a.admit(LOOPBACK, None, None, None),
            Err(Refusal::NotIngress)
        );
    }

    #[test]
    fn the_csrf_token_is_random_and_checked_whole() {
        let (a, b) = (Access::new(None, None), Access::new(None, None));
        assert_ne!(a.csrf(), b.csrf());
        assert_eq!(a.csrf().len(), 64);
        assert!(a.csrf_ok(a.csrf()));
        assert!(!a.csrf_ok(b.csrf()));
        assert!(!a.csrf_ok(&a.csrf()[..63]));
        assert!(!a.csrf_ok(""));
    }
}
