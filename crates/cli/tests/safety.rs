//! What pwsync never does, through the binary against real servers: print a secret (in any
//! encoding, at any verbosity, wherever the secret was configured), overwrite InfluxDB data
//! without `--force`, or keep a user waiting on a database port that refuses.

mod common;

use common::pwsync;
use pwsync_testkit::ha::{HaInstance, HaOptions};
use pwsync_testkit::influxd::InfluxServer;
use pwsync_testkit::mosquitto::Mosquitto;
use pwsync_testkit::sqlservers::PostgresServer;
use pwsync_testkit::{free_port, or_skip};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const ZONE: &str = "America/Los_Angeles";

/// Standard and URL-safe base64, without padding.
fn base64(bytes: &[u8], url_safe: bool) -> String {
    let table: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Every form a secret could take in output: as given, hex (either case, with or without
/// spaces: how libraries dump frames), Debug's list of byte values, and base64 (standard and
/// URL-safe, at each of the three alignments it can have inside a longer encoded text, such
/// as `Authorization: Basic` of `user:password`), keeping only the characters that depend on
/// the secret alone.
fn encodings(secret: &str) -> Vec<(String, String)> {
    let bytes = secret.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = vec![
        ("as is".to_string(), secret.to_string()),
        ("hex".to_string(), hex.clone()),
        ("HEX".to_string(), hex.to_uppercase()),
        (
            "spaced hex".to_string(),
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "byte list".to_string(),
            bytes
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    for url_safe in [false, true] {
        for k in 0..3usize {
            let mut padded = vec![0u8; k];
            padded.extend_from_slice(bytes);
            let enc = base64(&padded, url_safe);
            let (start, end) = ((8 * k).div_ceil(6), 8 * (k + bytes.len()) / 6);
            out.push((
                format!("base64{} at offset {k}", if url_safe { "url" } else { "" }),
                enc[start..end].to_string(),
            ));
        }
    }
    out
}

/// The encodings of `secret` found in `text`.
fn leaks(text: &str, secret: &str) -> Vec<String> {
    encodings(secret)
        .into_iter()
        .filter(|(_, e)| text.contains(e.as_str()))
        .map(|(name, _)| name)
        .collect()
}

#[test]
fn the_secret_encodings_find_what_libraries_print() {
    let token = "eyJhbGciOi.JIUzI1NiIsInR5cCI6-IkpXVCJ9_abc";
    let frame = format!("{{\"type\":\"auth\",\"access_token\":\"{token}\"}}");
    let hex: String = frame.bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(leaks(&format!("payload: 0x{hex}"), token), ["hex"]);
    let basic = format!(
        "Basic {}",
        base64(format!("admin:{token}").as_bytes(), false)
    );
    assert!(leaks(&basic, token).iter().any(|l| l.starts_with("base64")));
    assert!(leaks("nothing here", token).is_empty());
}

/// Run pwsync with `env` and `args`; killed after `timeout`.
fn run(env: &[(&str, String)], args: &[&str], timeout: Duration) -> (Output, bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pwsync"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // Drained while it runs: a pipe left full would block a chatty run (-vvv) until killed.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).unwrap();
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline && !killed {
            child.kill().unwrap();
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (output, killed)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Item 1 of issue 10: a password in `influxdb.url` appeared in every InfluxDB error, in
/// doctor's "Next:" line and `--json`, and in simulate's success line.
#[test]
fn an_influxdb_url_password_is_never_printed() {
    let Some(influx) = or_skip(InfluxServer::start()) else {
        return;
    };
    let secret = "UrlPw9f3k2LmQzX7";
    let closed = format!("http://admin:{secret}@127.0.0.1:{}", free_port());
    let live = influx
        .url()
        .replace("http://", &format!("http://admin:{secret}@"));
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            closed.as_str(),
            vec!["energy", "--start", "2025-06-01", "--end", "2025-06-01"],
        ),
        (closed.as_str(), vec!["doctor"]),
        (closed.as_str(), vec!["doctor", "--json"]),
        (
            closed.as_str(),
            vec!["simulate", "--start", "2025-06-01", "--days", "1"],
        ),
        (
            live.as_str(),
            vec!["simulate", "--start", "2025-06-01", "--days", "1"],
        ),
        (
            live.as_str(),
            vec!["simulate", "--start", "2025-06-01", "--days", "1"],
        ),
    ];
    for (i, (url, args)) in runs.iter().enumerate() {
        let env = [
            ("PWSYNC_INFLUXDB__URL", url.to_string()),
            ("PWSYNC_TIME_ZONE", ZONE.to_string()),
        ];
        let o = pwsync(&env, args);
        let out = text(&o);
        assert!(leaks(&out, secret).is_empty(), "{args:?}: {out}");
        assert!(out.contains("admin:***@"), "{args:?} names the URL: {out}");
        match i {
            // The first simulate writes (its success line), the second is refused.
            4 => assert!(o.status.success(), "{out}"),
            5 => assert!(!o.status.success(), "{out}"),
            _ => {}
        }
    }
}

/// Item 4 of issue 10: simulate into a database that already holds points in the range
/// replaced them silently. It refuses, counting them; `--force` overwrites.
#[test]
fn simulate_refuses_to_overwrite_points_unless_forced() {
    let Some(influx) = or_skip(InfluxServer::start()) else {
        return;
    };
    let env = [
        ("PWSYNC_INFLUXDB__URL", influx.url()),
        ("PWSYNC_TIME_ZONE", ZONE.to_string()),
    ];
    let sim = |seed: &str, extra: &[&str]| {
        let mut args = vec![
            "simulate",
            "--start",
            "2025-06-01",
            "--days",
            "2",
            "--seed",
            seed,
        ];
        args.extend_from_slice(extra);
        pwsync(&env, &args)
    };
    let energy = || {
        let o = pwsync(
            &env,
            &[
                "energy",
                "--start",
                "2025-06-01",
                "--end",
                "2025-06-02",
                "--json",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    // A fresh database: written.
    let first = sim("1", &[]);
    assert!(first.status.success(), "{}", text(&first));
    let written = energy();
    // Again, with another seed: refused, nothing changed, the count of points named.
    let again = sim("2", &[]);
    let err = String::from_utf8_lossy(&again.stderr).to_string();
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let points: u64 = err
        .split(" already holds ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of points: {err}"));
    // Two days of minutes (a few minutes of simulated gaps aside), in three series.
    assert!(points > 2 * 1440, "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(energy(), written, "a refused simulate writes nothing");
    // A range ending where the data starts holds none: written.
    let before = pwsync(
        &env,
        &[
            "simulate",
            "--start",
            "2025-05-30",
            "--days",
            "2",
            "--seed",
            "2",
        ],
    );
    assert!(before.status.success(), "{}", text(&before));
    assert_eq!(energy(), written);
    // --force overwrites.
    let forced = sim("2", &["--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert_ne!(energy(), written, "another seed, other data");
}

/// Item 12 of issue 10: a closed MySQL/PostgreSQL port waited 30 s for the pool and said
/// "pool timed out … pool timed out".
#[test]
fn a_closed_database_port_fails_at_once_naming_the_cause_once() {
    let port = free_port();
    for db in [
        format!("mysql://ha:DbPw7x2k@127.0.0.1:{port}/homeassistant"),
        format!("postgresql://ha@127.0.0.1:{port}/homeassistant?password=DbPw7x2k"),
    ] {
        let t0 = Instant::now();
        let o = pwsync(
            &[("PWSYNC_TIME_ZONE", ZONE.to_string())],
            &[
                "backfill",
                "--target",
                "db",
                "--db",
                &db,
                "--all",
                "--dry-run",
            ],
        );
        let took = t0.elapsed();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(err.to_lowercase().matches("refused").count(), 1, "{err}");
        assert!(!err.contains("DbPw7x2k"), "{err}");
    }
}

/// Where a placement puts the secrets: the config file's keys, `PWSYNC_*` variables, URL
/// userinfo (`user:secret@`), URL query parameters (`?password=`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Placement {
    File,
    Env,
    UrlUserinfo,
    UrlQuery,
}

struct Servers {
    influx: InfluxServer,
    broker: Mosquitto,
    ha: HaInstance,
    pg: PostgresServer,
}

/// Secrets of the matrix (each checked in every run): the real credentials of the servers,
/// and one that only a URL carries.
struct Secrets {
    influx: String,
    mqtt: String,
    ha_token: String,
    pg: String,
    in_ha_url: String,
}

impl Secrets {
    fn all(&self) -> [(&'static str, &str); 5] {
        [
            ("InfluxDB password", &self.influx),
            ("MQTT password", &self.mqtt),
            ("HA token", &self.ha_token),
            ("PostgreSQL password", &self.pg),
            ("secret in HA's URL", &self.in_ha_url),
        ]
    }
}

/// The config file and the environment of one placement.
fn placement(
    p: Placement,
    s: &Servers,
    secrets: &Secrets,
    dir: &Path,
) -> (std::path::PathBuf, Vec<(&'static str, String)>) {
    let influx = s.influx.url();
    let broker = format!("127.0.0.1:{}", s.broker.port());
    let ha = s.ha.url();
    let pg = format!("127.0.0.1:{}/homeassistant", s.pg.port());
    let token_file = dir.join("token");
    std::fs::write(&token_file, &secrets.ha_token).unwrap();
    let mut file = format!("time_zone = \"{ZONE}\"\n");
    let mut env: Vec<(&'static str, String)> = vec![];
    match p {
        Placement::File => file.push_str(&format!(
            "[influxdb]\nurl = \"{influx}\"\nusername = \"pwsync\"\npassword = \"{}\"\n\
             [homeassistant]\nurl = \"{ha}\"\ntoken = \"{}\"\n\
             recorder_db = \"postgres://homeassistant:{}@{pg}\"\n\
             [mqtt]\nurl = \"mqtt://{broker}\"\nusername = \"pwsync\"\npassword = \"{}\"\n",
            secrets.influx, secrets.ha_token, secrets.pg, secrets.mqtt
        )),
        Placement::Env => {
            env.extend([
                ("PWSYNC_INFLUXDB__URL", influx),
                ("PWSYNC_INFLUXDB__USERNAME", "pwsync".to_string()),
                ("PWSYNC_INFLUXDB__PASSWORD", secrets.influx.clone()),
                ("PWSYNC_HOMEASSISTANT__URL", ha),
                ("PWSYNC_HOMEASSISTANT__TOKEN", secrets.ha_token.clone()),
                (
                    "PWSYNC_HOMEASSISTANT__RECORDER_DB",
                    format!("postgres://homeassistant:{}@{pg}", secrets.pg),
                ),
                ("PWSYNC_MQTT__URL", format!("mqtt://{broker}")),
                ("PWSYNC_MQTT__USERNAME", "pwsync".to_string()),
                ("PWSYNC_MQTT__PASSWORD", secrets.mqtt.clone()),
            ]);
        }
        Placement::UrlUserinfo => file.push_str(&format!(
            "[influxdb]\nurl = \"{}\"\n\
             [homeassistant]\nurl = \"{}\"\ntoken_file = \"{}\"\n\
             recorder_db = \"postgres://homeassistant:{}@{pg}\"\n\
             [mqtt]\nurl = \"mqtt://pwsync:{}@{broker}\"\n",
            influx.replace("http://", &format!("http://pwsync:{}@", secrets.influx)),
            ha.replace("http://", &format!("http://owner:{}@", secrets.in_ha_url)),
            token_file.display(),
            secrets.pg,
            secrets.mqtt
        )),
        Placement::UrlQuery => file.push_str(&format!(
            "[influxdb]\nurl = \"{influx}/?u=pwsync&p={}\"\n\
             [homeassistant]\nurl = \"{ha}/?token={}\"\ntoken_file = \"{}\"\n\
             recorder_db = \"postgres://homeassistant@{pg}?password={}&sslmode=disable\"\n\
             [mqtt]\nurl = \"mqtt://{broker}?username=pwsync&password={}\"\n",
            secrets.influx,
            secrets.in_ha_url,
            token_file.display(),
            secrets.pg,
            secrets.mqtt
        )),
    }
    let path = dir.join("pwsync.toml");
    std::fs::write(&path, file).unwrap();
    (path, env)
}

/// The secrets test matrix (issue 10, "Done means"): every command × default/-v/-vv/-vvv and
/// `PWSYNC_LOG=trace` × secrets in the config file, the environment, URL userinfo and URL
/// queries, against a real InfluxDB, Mosquitto, Home Assistant and PostgreSQL that use those
/// secrets. stdout and stderr of every run are searched for every secret in every encoding.
/// Commands may fail (a URL query is not where most servers take a password); what they print
/// is checked all the same.
#[test]
fn no_secret_in_any_output_of_any_command_at_any_verbosity() {
    let t0 = Instant::now();
    let Some(_) = or_skip(Mosquitto::available()) else {
        return;
    };
    let Some(_) = or_skip(PostgresServer::available()) else {
        return;
    };
    let Some(_) = pwsync_testkit::ha::venv_or_skip() else {
        return;
    };
    let secrets0 = (
        "InfPw4d9sKq2ZrT8wX",
        "MqttPw7c1VbN5mYp3Q",
        "HaUrlPw2e8RtY6uI0o",
    );
    let influx = InfluxServer::start_with_auth("pwsync", secrets0.0).unwrap();
    let broker = Mosquitto::start_with_login("pwsync", secrets0.1).unwrap();
    let pg = PostgresServer::start().unwrap();
    let ha = HaInstance::start(HaOptions::default().with_time_zone(ZONE)).unwrap();
    let secrets = Secrets {
        influx: secrets0.0.to_string(),
        mqtt: secrets0.1.to_string(),
        ha_token: ha.token().to_string(),
        pg: pg.password().to_string(),
        in_ha_url: secrets0.2.to_string(),
    };
    let servers = Servers {
        influx,
        broker,
        ha,
        pg,
    };
    let started = t0.elapsed();
    // Two days of data for the commands that read it.
    let setup = pwsync(
        &[
            ("PWSYNC_INFLUXDB__URL", servers.influx.url()),
            ("PWSYNC_INFLUXDB__USERNAME", "pwsync".into()),
            ("PWSYNC_INFLUXDB__PASSWORD", secrets.influx.clone()),
            ("PWSYNC_TIME_ZONE", ZONE.into()),
        ],
        &["simulate", "--start", "2025-06-01", "--days", "2"],
    );
    assert!(setup.status.success(), "{}", text(&setup));

    let commands: Vec<Vec<&str>> = vec![
        vec!["demo", "--days", "1"],
        vec!["energy", "--start", "2025-06-01", "--end", "2025-06-02"],
        vec!["simulate", "--start", "2025-06-01", "--days", "1"],
        vec!["serve", "--once"],
        vec![
            "backfill",
            "--dry-run",
            "--start",
            "2025-06-01",
            "--end",
            "2025-06-02",
        ],
        vec!["backfill", "--target", "db", "--dry-run", "--all"],
        vec!["migrate", "--dry-run"],
        vec!["check", "--since", "2025-06-01"],
        vec!["repair", "--dry-run", "--since", "2025-06-01"],
        vec!["doctor"],
        vec!["doctor", "--json"],
    ];
    let levels: [(&str, Option<&str>, Option<&str>); 5] = [
        ("default", None, None),
        ("-v", Some("-v"), None),
        ("-vv", Some("-vv"), None),
        ("-vvv", Some("-vvv"), None),
        ("PWSYNC_LOG=trace", None, Some("trace")),
    ];
    let placements = [
        Placement::File,
        Placement::Env,
        Placement::UrlUserinfo,
        Placement::UrlQuery,
    ];
    let dirs: Vec<tempfile::TempDir> = placements
        .iter()
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let configs: Vec<_> = placements
        .iter()
        .zip(&dirs)
        .map(|(p, d)| placement(*p, &servers, &secrets, d.path()))
        .collect();
    let mut runs = vec![];
    for (pi, p) in placements.iter().enumerate() {
        for level in &levels {
            for cmd in &commands {
                runs.push((pi, *p, *level, cmd.clone()));
            }
        }
    }
    let next = AtomicUsize::new(0);
    let findings = Mutex::new(Vec::<String>::new());
    let exercised = Mutex::new(Vec::<String>::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((pi, p, (level, flag, log), cmd)) = runs.get(i) else {
                    return;
                };
                let (config, env) = &configs[*pi];
                let mut env: Vec<(&str, String)> = env.clone();
                env.push(("PWSYNC_CONFIG", config.display().to_string()));
                if let Some(log) = log {
                    env.push(("PWSYNC_LOG", log.to_string()));
                }
                let mut args: Vec<&str> = flag.iter().copied().collect();
                args.extend(cmd.iter().copied());
                let (o, killed) = run(&env, &args, Duration::from_secs(120));
                let out = text(&o);
                for (what, secret) in secrets.all() {
                    let found = leaks(&out, secret);
                    if !found.is_empty() {
                        findings.lock().unwrap().push(format!(
                            "{what} ({found:?}) in `pwsync {}` ({level}, {p:?}):\n{}",
                            args.join(" "),
                            out.lines()
                                .filter(|l| !leaks(l, secret).is_empty())
                                .take(3)
                                .collect::<Vec<_>>()
                                .join("\n")
                        ));
                    }
                }
                if killed {
                    exercised
                        .lock()
                        .unwrap()
                        .push(format!("killed after 120 s: {args:?} {p:?}"));
                }
                // What the matrix must have reached for its silence to mean something: HA
                // authenticated (the token went over the websocket) and libraries ran at trace.
                if *p == Placement::File && cmd[0] == "doctor" && cmd.len() == 1 {
                    let reached = String::from_utf8_lossy(&o.stdout).contains(&format!(
                        "version {}",
                        pwsync_testkit::ha_chroot::selected().version
                    ));
                    exercised
                        .lock()
                        .unwrap()
                        .push(format!("doctor {level} reached HA: {reached}"));
                }
            });
        }
    });
    let findings = findings.into_inner().unwrap();
    let exercised = exercised.into_inner().unwrap();
    eprintln!(
        "secrets matrix: {} commands x {} levels x {} placements = {} runs, {} secrets x {} \
         encodings each; servers started in {:.0} s, all in {:.0} s",
        commands.len(),
        levels.len(),
        placements.len(),
        runs.len(),
        secrets.all().len(),
        encodings("x").len(),
        started.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    assert!(findings.is_empty(), "{}", findings.join("\n\n"));
    assert!(
        exercised.iter().all(|e| e.ends_with("reached HA: true")),
        "{exercised:#?}"
    );
    assert_eq!(exercised.len(), levels.len(), "{exercised:#?}");
}
