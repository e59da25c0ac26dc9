//! Identifiers from configuration are validated and always quoted: user text never becomes
//! InfluxQL syntax.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Accept `[A-Za-z0-9_.-]+` (what Powerwall-Dashboard and InfluxDB setups use).
    pub fn new(what: &str, s: &str) -> Result<Ident, crate::InfluxError> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            Ok(Ident(s.to_string()))
        } else {
            Err(crate::InfluxError::BadIdentifier {
                what: what.to_string(),
                value: s.to_string(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Double-quoted, which is valid InfluxQL for any validated name.
impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_anything_that_could_escape_quoting() {
        for bad in ["", "a\"b", "a b", "x;DROP DATABASE y", "a\\b", "é"] {
            assert!(Ident::new("field", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Ident::new("field", "from_pw").unwrap().to_string(),
            "\"from_pw\""
        );
    }
}
