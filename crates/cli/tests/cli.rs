//! The `pwsync` binary against a real InfluxDB: output that a user reads, and the bad-input
//! contract (one-line error naming the fix, non-zero exit).

use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::or_skip;
use std::process::{Command, Output};

fn server(auth: bool) -> Option<InfluxServer> {
    or_skip(if auth {
        InfluxServer::start_with_auth("admin", "pw-right")
    } else {
        InfluxServer::start()
    })
}

fn pwsync(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pwsync"));
    c.args(args)
        .env_remove("PWSYNC_CONFIG")
        .current_dir(std::env::temp_dir())
        .env("PWSYNC_INFLUXDB__URL", url)
        .env("PWSYNC_TIME_ZONE", "America/Los_Angeles");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn assert_one_line_error(o: &Output, needle: &str) {
    let e = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {e}");
    let lines: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {e}");
    assert!(e.contains(needle), "error should mention {needle:?}: {e}");
}

#[test]
fn energy_prints_days_and_gaps_and_rejects_bad_input() {
    let Some(srv) = server(false) else { return };
    let url = srv.url();
    let o = pwsync(
        &url,
        &[
            "simulate",
            "--days",
            "70",
            "--start",
            "2025-03-01",
            "--seed",
            "9",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // The spring-forward day has 23 hours; the JSON has every day of the range.
    let o = pwsync(
        &url,
        &[
            "energy",
            "--start",
            "2025-03-08",
            "--end",
            "2025-03-10",
            "--json",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[1]["date"], "2025-03-09");
    assert_eq!(days[1]["expected_hours"], 23);
    assert_eq!(days[0]["expected_hours"], 24);
    let home = days[0]["kwh"]["home"].as_f64().unwrap();
    assert!(home > 5.0 && home < 80.0, "{home}");

    // The 48-hour outage (day 100 is outside 70 days; the simulator's short gaps are inside):
    // every gap is listed with its length.
    let o = pwsync(
        &url,
        &[
            "energy",
            "--start",
            "2025-03-01",
            "--end",
            "2025-05-09",
            "--json",
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!v["gaps"].as_array().unwrap().is_empty());
    assert!(v["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["minutes"].as_f64().unwrap() > 5.0));

    // Table output for people.
    let o = pwsync(
        &url,
        &["energy", "--start", "2025-03-08", "--end", "2025-03-10"],
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("2025-03-09") && out.contains("23/23"), "{out}");

    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--start", "2025-03-10", "--end", "2025-03-08"],
            vec![],
            "swap",
        ),
        (
            vec!["--start", "2025-02-30", "--end", "2025-03-08"],
            vec![],
            "2025-02-30",
        ),
        (
            vec!["--start", "yesterday", "--end", "2025-03-08"],
            vec![],
            "yesterday",
        ),
        (
            vec!["--start", "2025-03-01", "--end", "2025-03-02"],
            vec![("PWSYNC_INFLUXDB__FIELDS__HOME", "house")],
            "house",
        ),
        (
            vec!["--start", "2025-03-01", "--end", "2025-03-02"],
            vec![("PWSYNC_INFLUXDB__RETENTION_POLICY", "forever")],
            "forever",
        ),
        (
            vec!["--start", "2025-03-01", "--end", "2025-03-02"],
            vec![("PWSYNC_INFLUXDB__DATABASE", "nodb")],
            "nodb",
        ),
    ];
    for (args, env, needle) in cases {
        let mut a = vec!["energy"];
        a.extend(args);
        let o = pwsync(&url, &a, &env);
        assert_one_line_error(&o, needle);
    }
    let o = pwsync(
        &url,
        &[
            "energy",
            "--start",
            "2025-03-01",
            "--end",
            "2025-03-02",
            "--fields",
            "garage",
        ],
        &[],
    );
    assert!(!o.status.success() && stderr(&o).contains("garage"));

    let dead = format!("http://127.0.0.1:{}", pwsync_testkit::free_port());
    let o = pwsync(
        &dead,
        &["energy", "--start", "2025-03-01", "--end", "2025-03-02"],
        &[],
    );
    assert_one_line_error(&o, "unreachable");
}

#[test]
fn wrong_password_is_one_line_and_never_shown() {
    let Some(srv) = server(true) else { return };
    let o = pwsync(
        &srv.url(),
        &["energy", "--start", "2025-03-01", "--end", "2025-03-02"],
        &[
            ("PWSYNC_INFLUXDB__USERNAME", "admin"),
            ("PWSYNC_INFLUXDB__PASSWORD", "pw-wrong"),
        ],
    );
    assert_one_line_error(&o, "credentials");
    assert!(!stderr(&o).contains("pw-wrong"));
}

#[test]
fn serve_without_a_broker_is_a_one_line_error() {
    let port = pwsync_testkit::free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let o = pwsync(
        "http://127.0.0.1:1",
        &["serve", "--once"],
        &[("PWSYNC_MQTT__URL", url.as_str())],
    );
    assert_one_line_error(&o, "cannot reach the MQTT broker");
}

/// `pwsync … | head`: a reader that stops early ends the command quietly, as it ends `cat`,
/// not with a panic and its backtrace on the terminal.
#[test]
fn a_reader_that_stops_early_ends_the_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["completions", "bash"][..], &["man"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_pwsync"))
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{args:?}: {err}");
    }
}
