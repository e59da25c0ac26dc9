//! Advice written for the CLI, told in the panel's words: a person in HA's sidebar (the add-on)
//! has no shell, so "`pwsync check`" becomes what to press here.

/// What the panel offers for a CLI command, by its name (the word after `pwsync`).
fn on_the_panel(command: &str) -> &'static str {
    match command {
        "check" => "History → Check now",
        "repair" => "Jobs → repair (Dry run, then Apply)",
        "backfill" => "Jobs → backfill (Dry run, then Apply)",
        "migrate" => "Jobs → migrate (Dry run, then Apply)",
        "doctor" => "this Status page",
        "energy-dashboard" => "Jobs → Energy dashboard (Dry run, then Apply)",
        // The panel is served by `serve` itself.
        "serve" => "pwsync",
        _ => "the panel's Jobs page",
    }
}

/// `text` with every command in backquotes (`` `pwsync check` ``) replaced by what to press on
/// the panel; "`pwsync X --dry-run`, then `pwsync X`" becomes one step.
pub fn for_panel(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("`pwsync ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(end) = after.find('`') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let command = after[..end].split_whitespace().nth(1).unwrap_or_default();
        // "…, then `pwsync serve`": serve is running (it serves this page), so restart it.
        if command == "serve" && out.ends_with("then ") {
            out.push_str("restart ");
        }
        out.push_str(on_the_panel(command));
        rest = &after[end + 1..];
        // The CLI's two steps ("dry run, then the real run") are one step on the panel.
        let then = format!(", then `pwsync {command}");
        if let Some(second) = rest.strip_prefix(then.as_str()) {
            if let Some(close) = second.find('`') {
                rest = &second[close + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `text` asks for a command of pwsync's CLI (what no panel text may do).
pub fn asks_for_a_command(text: &str) -> bool {
    text.contains("`pwsync ") || text.to_lowercase().contains("run pwsync ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_become_what_to_press_and_the_rest_stays() {
        assert_eq!(
            for_panel("prove the Energy dashboard right: `pwsync check` (and `pwsync repair` if it finds anything)"),
            "prove the Energy dashboard right: History → Check now (and Jobs → repair (Dry run, then Apply) if it finds anything)"
        );
        assert_eq!(
            for_panel("fill HA's statistics from InfluxDB: `pwsync backfill --all --dry-run`, then `pwsync backfill --all`"),
            "fill HA's statistics from InfluxDB: Jobs → backfill (Dry run, then Apply)"
        );
        assert_eq!(
            for_panel("MQTT: refused (`pwsync serve` needs the broker)"),
            "MQTT: refused (pwsync needs the broker)"
        );
        assert_eq!(
            for_panel("point mqtt.url at it, then `pwsync serve`"),
            "point mqtt.url at it, then restart pwsync"
        );
        for text in [
            "nothing to do",
            "an unclosed `pwsync check",
            "`ls` is not ours",
        ] {
            assert_eq!(for_panel(text), text);
        }
        for cli in [
            "move the Tesla integration's history onto pwsync's meters: `pwsync migrate --dry-run`, then `pwsync migrate`",
            "put pwsync's meters into HA's Energy dashboard (2 missing there): `pwsync energy-dashboard --dry-run`, then `pwsync energy-dashboard`",
            "Fix them with `pwsync repair --dry-run`, then `pwsync repair`.",
        ] {
            assert!(asks_for_a_command(cli));
            assert!(!asks_for_a_command(&for_panel(cli)), "{}", for_panel(cli));
        }
    }
}
