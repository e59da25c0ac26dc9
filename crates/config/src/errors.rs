//! The one-line error report every command and the daemon print.

/// An error and its causes joined by ": ", each cause once (a message that already quotes its
/// source, as sqlx's and pwsync's own connection errors do, does not repeat it), with every URL
/// in it shown as [`pwsync_redact::text`] shows it and control characters escaped.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    escape_controls(&pwsync_redact::text(&line))
}

/// `s` with control characters escaped (`\n`, `\u{1b}`): a newline inside a user's identifier
/// must not split the error, or forge a line of its own.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the database: {source}")]
    struct Quoting {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = anyhow::Error::new(Quoting { source: io }).context("backfill");
        assert_eq!(
            one_line(&e),
            "backfill: cannot open the database: connection refused"
        );
    }

    #[test]
    fn control_characters_are_escaped_into_one_line() {
        let s = escape_controls("invalid field 'ho\nerror: forged\r\t\u{1b}[31m' é");
        assert_eq!(s, "invalid field 'ho\\nerror: forged\\r\\t\\u{1b}[31m' é");
    }
}
