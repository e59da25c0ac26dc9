//! The one place that decides what of a URL pwsync may print. Every crate that shows a URL
//! (in an error, a log line, a report or `--json`) shows [`url`] of it; text from a library
//! that may quote a URL goes through [`text`].
//!
//! Both work on strings as given, not on parsed URLs: a malformed URL is exactly the one an
//! error message quotes, and it must not leak either.

/// The mask that replaces a secret.
pub const MASK: &str = "***";

/// `u` with the password of its userinfo (`user:password@`) and the values of query or
/// fragment parameters that carry credentials ([`is_secret_param`]) replaced by `***`.
/// The user name, host, port, path and other parameters stay: they are what a reader needs to
/// recognise the URL.
pub fn url(u: &str) -> String {
    let (head, rest) = match u.find("://") {
        Some(i) => u.split_at(i + 3),
        None => ("", u),
    };
    // The userinfo ends at the last '@' before the query: a password typed with '/' or '@'
    // in it, not percent-encoded, is still all masked.
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let (authority, tail) = match rest[..query_start].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let after = &rest[at..];
            let shown = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:{MASK}"),
                None => userinfo.to_string(),
            };
            let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
            (format!("{shown}{}", &after[..host_end]), &after[host_end..])
        }
        None => {
            let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            (rest[..host_end].to_string(), &rest[host_end..])
        }
    };
    format!("{head}{authority}{}", params(tail))
}

/// `s` with every URL in it (`scheme://…` up to whitespace or a quote) passed through [`url`].
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Whether a query parameter's value is a credential: `password`, `sslpassword`, `pass`,
/// `pwd`, InfluxDB's `p`, `token`, `access_token`, `api_key`, `secret`, … (by name, ignoring
/// case). A harmless parameter that matches (`sslkey`, a path) loses only its value.
pub fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "p"
        || [
            "pass",
            "pwd",
            "token",
            "secret",
            "key",
            "auth",
            "credential",
            "signature",
        ]
        .iter()
        .any(|s| n.contains(s))
}

/// The path, query and fragment of a URL with credential parameters masked.
fn params(tail: &str) -> String {
    let Some(q) = tail.find(['?', '#']) else {
        return tail.to_string();
    };
    let mut out = String::from(&tail[..q]);
    let mut rest = &tail[q..];
    while let Some(sep) = rest.chars().next() {
        out.push(sep);
        rest = &rest[sep.len_utf8()..];
        let end = rest.find(['&', ';', '#']).unwrap_or(rest.len());
        match rest[..end].split_once('=') {
            Some((name, _value)) if is_secret_param(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_passwords_are_masked_and_the_rest_is_kept() {
        for (given, shown) in [
            ("http://pw:hunter2@influx:8086", "http://pw:***@influx:8086"),
            (
                "mysql://ha:s3cret@db:3306/homeassistant",
                "mysql://ha:***@db:3306/homeassistant",
            ),
            (
                "mqtt://ha%20user:p%40ss@broker.lan:1884",
                "mqtt://ha%20user:***@broker.lan:1884",
            ),
            // A password holding '@' and '/' (not percent-encoded, as people type them).
            ("http://u:a@b@h:1/x", "http://u:***@h:1/x"),
            ("http://u:a/b@h:1/x?q=1", "http://u:***@h:1/x?q=1"),
            ("postgres://ha@db/ha", "postgres://ha@db/ha"),
            ("sqlite:///config/x.db", "sqlite:///config/x.db"),
            ("http://127.0.0.1:8086", "http://127.0.0.1:8086"),
            // No scheme: still userinfo.
            ("user:pw@host:8086", "user:***@host:8086"),
            ("", ""),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
    }

    #[test]
    fn credential_parameters_are_masked_and_others_kept() {
        for (given, shown) in [
            (
                "postgresql://ha@db/ha?password=hunter2&sslmode=require",
                "postgresql://ha@db/ha?password=***&sslmode=require",
            ),
            (
                "postgres://db/ha?sslmode=verify-full&sslpassword=k3y&application_name=x",
                "postgres://db/ha?sslmode=verify-full&sslpassword=***&application_name=x",
            ),
            ("http://h:8086?u=me&p=hunter2", "http://h:8086?u=me&p=***"),
            (
                "http://h/?PASSWORD=x;Token=y",
                "http://h/?PASSWORD=***;Token=***",
            ),
            ("http://h/#access_token=abc", "http://h/#access_token=***"),
            // A value holding '=' is masked whole.
            ("http://h/?token=a=b&x=1", "http://h/?token=***&x=1"),
            ("sqlite:///x.db?mode=ro", "sqlite:///x.db?mode=ro"),
            ("http://h/?password", "http://h/?password"),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
    }

    #[test]
    fn urls_inside_text_are_masked() {
        assert_eq!(
            text("cannot reach http://u:pw@h:1: refused; see 'mysql://a:b@c/d?password=e' x://"),
            "cannot reach http://u:***@h:1: refused; see 'mysql://a:***@c/d?password=***' x://"
        );
        assert_eq!(text("no url here"), "no url here");
    }
}
