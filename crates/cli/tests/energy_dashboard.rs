//! `pwsync energy-dashboard` end to end against each Home Assistant the harness runs: pwsync's
//! meters into empty Energy preferences (and HA's Energy data reading the backfilled energy
//! through them), foreign sources kept, a Teslemetry grid meter refused without `--replace`,
//! replaced with it and put back by `--restore`, and a dry run that leaves `.storage/energy`
//! as it was.
//!
//! The test configuration has no `default_config:`, so each HA here loads `energy:` itself.
//!
//! HA 2025.4 keeps a grid source's meters in `flow_from`/`flow_to` lists; HA 2026.11 gives each
//! grid connection flat `stat_energy_from`/`stat_energy_to` keys and migrates a stored file of
//! the older shape when it loads it. The tests read the seeded preferences back from HA, so they
//! hold on either shape.

mod common;

use common::*;
use pwsync_energy::{Field, StatRow, HOUR};
use pwsync_ha::HaClient;
use pwsync_testkit::ha::{self, HaInstance, HaOptions};
use pwsync_testkit::mosquitto::Mosquitto;
use serde_json::{json, Value};
use std::path::Path;

const METERS: [(Field, &str); 5] = [
    (Field::FromGrid, "sensor.powerwall_grid_imported"),
    (Field::ToGrid, "sensor.powerwall_grid_exported"),
    (Field::Solar, "sensor.powerwall_solar_generated"),
    (Field::FromPw, "sensor.powerwall_battery_discharged"),
    (Field::ToPw, "sensor.powerwall_battery_charged"),
];
const TESLA_GRID: &str = "sensor.my_home_grid_imported";

fn options(storage_files: Vec<(String, String)>) -> HaOptions {
    HaOptions {
        storage_files,
        extra_config: "energy:\n".into(),
        ..HaOptions::default().with_time_zone(ZONE)
    }
}

fn ha_env(ha: &HaInstance) -> Vec<(&'static str, String)> {
    vec![
        ("PWSYNC_HOMEASSISTANT__URL", ha.url()),
        ("PWSYNC_HOMEASSISTANT__TOKEN", ha.token().to_string()),
    ]
}

async fn prefs(c: &HaClient) -> Option<Value> {
    c.energy_get_prefs().await.unwrap()
}

/// The statistics the preferences count for a slot, as HA's own dashboard finds them, in
/// either grid shape.
fn slot_stats(p: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in p["energy_sources"].as_array().unwrap() {
        let t = s["type"].as_str().unwrap().to_string();
        if t == "grid" {
            for (k, slot) in [
                ("stat_energy_from", "grid_from"),
                ("stat_energy_to", "grid_to"),
            ] {
                if let Some(id) = s[k].as_str() {
                    out.push((slot.into(), id.into()));
                }
            }
        }
        for f in s["flow_from"].as_array().into_iter().flatten() {
            out.push((
                "grid_from".into(),
                f["stat_energy_from"].as_str().unwrap().into(),
            ));
        }
        for f in s["flow_to"].as_array().into_iter().flatten() {
            out.push((
                "grid_to".into(),
                f["stat_energy_to"].as_str().unwrap().into(),
            ));
        }
        for k in ["stat_energy_from", "stat_energy_to"] {
            if let (false, Some(id)) = (t == "grid", s[k].as_str()) {
                out.push((format!("{t}_{k}"), id.to_string()));
            }
        }
    }
    out
}

/// HA's energy over one local day of a statistic (`recorder/statistic_during_period`, what the
/// Energy dashboard's day view asks for), in kWh.
async fn ha_day_change(c: &HaClient, id: &str, day: &str) -> f64 {
    let start = day_start(day);
    let v = c
        .call(
            "recorder/statistic_during_period",
            json!({
                "statistic_id": id,
                "fixed_period": {
                    "start_time": pwsync_ha::client::iso(start),
                    "end_time": pwsync_ha::client::iso(start + 24 * HOUR),
                },
                "types": ["change"],
                "units": {"energy": "kWh"},
            }),
        )
        .await
        .unwrap();
    v["change"].as_f64().unwrap_or_else(|| panic!("{id}: {v}"))
}

#[tokio::test]
async fn empty_preferences_get_pwsync_meters_and_ha_reads_the_backfilled_energy_through_them() {
    let Some(influx) = servers() else { return };
    let Some(_) = pwsync_testkit::or_skip(Mosquitto::available()) else {
        return;
    };
    let broker = Mosquitto::start().unwrap();
    const DAY: &str = "2025-06-11";
    simulate(&influx.url(), "2025-06-10", 3, 7);
    // And today, so the power sensors have readings of the moment.
    simulate(
        &influx.url(),
        &chrono::Utc::now().format("%Y-%m-%d").to_string(),
        1,
        7,
    );
    // HA's clock 90 s before one of its 5-minute marks: it compiles the power sensors' first
    // statistics within the test, which `energy/validate` asks for.
    let now = chrono::Utc::now().timestamp();
    let mark = (now / 300 + 1) * 300;
    let ha = HaInstance::start(HaOptions {
        clock_offset_secs: Some((mark - 90 - now).rem_euclid(300)),
        ..options(Vec::new()).with_broker(broker.port())
    })
    .unwrap();
    let c = ha_client(&ha);
    let mut env = ha_env(&ha);
    env.push(("PWSYNC_INFLUXDB__URL", influx.url()));
    env.push(("PWSYNC_TIME_ZONE", ZONE.to_string()));
    assert_eq!(
        prefs(&c).await,
        None,
        "a fresh HA has no Energy preferences"
    );

    // Before the backfill, the meters' statistics do not exist: refused, nothing written.
    let o = pwsync(&env, &["energy-dashboard"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("pwsync backfill --all") && err.trim().lines().count() == 1,
        "{err}"
    );
    ok(pwsync(&env, &["backfill", "--start", DAY, "--end", DAY]));

    let doctor = ok(pwsync(&env, &["doctor", "--json"]));
    let d = &doctor["homeassistant"]["energy_dashboard"];
    assert_eq!(d["missing"].as_array().unwrap().len(), 5, "{d}");
    assert!(
        doctor["next_action"]
            .as_str()
            .unwrap()
            .contains("pwsync energy-dashboard --dry-run"),
        "{doctor}"
    );

    let dry = ok(pwsync(&env, &["energy-dashboard", "--dry-run", "--json"]));
    assert_eq!(dry["changed"], true);
    assert_eq!(dry["added"].as_array().unwrap().len(), 5);
    assert_eq!(dry["backup"], Value::Null);
    assert_eq!(prefs(&c).await, None, "the dry run wrote nothing");

    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("before.json");
    let o = pwsync(
        &env,
        &["energy-dashboard", "--backup", backup.to_str().unwrap()],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("+ ") && out.contains("--restore"), "{out}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&backup).unwrap()).unwrap();
    assert_eq!(
        saved,
        json!({"energy_sources": [], "device_consumption": []})
    );

    let after = prefs(&c).await.expect("HA has preferences now");
    let mut got = slot_stats(&after);
    got.sort();
    let mut want: Vec<(String, String)> = [
        ("grid_from", METERS[0].1),
        ("grid_to", METERS[1].1),
        ("solar_stat_energy_from", METERS[2].1),
        ("battery_stat_energy_from", METERS[3].1),
        ("battery_stat_energy_to", METERS[4].1),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(!after.to_string().contains("home_usage"));

    // Power flows (HA 2025.12 and later): each of pwsync's sources names its power sensor,
    // signed as HA reads it; an older HA gets no power key at all.
    let power: Vec<(String, Value)> = after["energy_sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["type"].as_str().unwrap().to_string(),
                s["stat_rate"].clone(),
            )
        })
        .collect();
    if pwsync_jobs::dashboard::has_power(ha.version()) {
        for (kind, sensor) in [
            ("grid", "sensor.powerwall_grid_power"),
            ("solar", "sensor.powerwall_solar_power"),
            ("battery", "sensor.powerwall_battery_power"),
        ] {
            assert!(
                power.contains(&(kind.to_string(), json!(sensor))),
                "{kind} has no {sensor} on HA {}: {after}",
                ha.version()
            );
        }
    } else {
        assert!(
            !after.to_string().contains("stat_rate") && after.get("power").is_none(),
            "power keys on HA {}: {after}",
            ha.version()
        );
    }
    // HA's own check of the preferences, while serve publishes the sensors they name.
    let mut live = env.clone();
    live.push(("PWSYNC_MQTT__URL", broker.url()));
    live.push(("PWSYNC_WEB__LISTEN", String::new()));
    let serve_log = tempfile::NamedTempFile::new().unwrap();
    // Polls 20 s apart: HA expires a reading of the moment after three polls without one.
    let mut serve = spawn_serve_with(
        &live,
        "20",
        "info,pwsync=debug",
        std::process::Stdio::from(serve_log.reopen().unwrap()),
    );
    // Every sensor the preferences name, as HA has it: on a loaded machine HA may take a few
    // seconds to set up the last of the entities serve announced at once.
    let within = std::time::Duration::from_secs(60);
    let mut named: Vec<&str> = METERS.iter().map(|(_, id)| *id).collect();
    if pwsync_jobs::dashboard::has_power(ha.version()) {
        named.extend([
            "sensor.powerwall_grid_power",
            "sensor.powerwall_solar_power",
            "sensor.powerwall_battery_power",
        ]);
    }
    for id in named {
        wait_entity(&c, id, within, |s| s.state.parse::<f64>().is_ok()).await;
    }
    // Until HA's first 5-minute compile, a power sensor has no statistics yet: the one
    // finding that may come and go.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(360);
    loop {
        let verdict = c.call("energy/validate", json!({})).await.unwrap();
        let kinds: Vec<String> = verdict["energy_sources"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|per_source| per_source.as_array().unwrap())
            .map(|i| i["type"].as_str().unwrap_or("?").to_string())
            .collect();
        if kinds.is_empty() {
            break;
        }
        assert!(
            kinds.iter().all(|k| k == "statistics_not_defined")
                && std::time::Instant::now() < deadline,
            "energy/validate on HA {}: {verdict}\nserve's log:\n{}",
            ha.version(),
            std::fs::read_to_string(serve_log.path()).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    stop(&mut serve);

    // HA's Energy data of the day, read through the statistics the preferences name, is
    // InfluxDB's energy of the day.
    let (start, end) = (day_start(DAY), day_start(DAY) + 24 * HOUR);
    let mut with_energy = 0;
    for (field, id) in METERS {
        let want: f64 = influx_hourly(&influx.url(), field, start, end)
            .await
            .values()
            .sum();
        let got = ha_day_change(&c, id, DAY).await;
        eprintln!("{id}: HA {got:.3} kWh, InfluxDB {want:.3} kWh");
        with_energy += usize::from(want > 0.1);
        assert!(
            (got - want).abs() < 1e-3,
            "{id}: HA reads {got} kWh, InfluxDB has {want} kWh"
        );
    }
    assert!(
        with_energy >= 3,
        "the simulated day moves energy on most flows"
    );

    let doctor = ok(pwsync(&env, &["doctor", "--json"]));
    let d = &doctor["homeassistant"]["energy_dashboard"];
    assert_eq!(d["uses"].as_array().unwrap().len(), 5, "{d}");
    assert_eq!(d["problems"], json!([]));

    // A second run has nothing to do and saves nothing.
    let again = tmp.path().join("again.json");
    let o = pwsync(
        &env,
        &["energy-dashboard", "--backup", again.to_str().unwrap()],
    );
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing to change"));
    assert!(!again.exists());
}

fn registry() -> String {
    json!({
        "version": 1,
        "minor_version": 1,
        "key": "core.entity_registry",
        "data": {"entities": [{
            "entity_id": TESLA_GRID,
            "platform": "teslemetry",
            "unique_id": "2252168612345-grid_energy_imported",
            "original_name": "Grid imported",
            "unit_of_measurement": "kWh",
        }]}
    })
    .to_string()
}

/// The user's preferences: Teslemetry's grid meter with a tariff, and sources pwsync must keep.
fn seeded_prefs() -> Value {
    json!({
        "energy_sources": [
            {"type": "grid", "flow_from": [{"stat_energy_from": TESLA_GRID, "stat_cost": null,
                "entity_energy_price": null, "number_energy_price": 0.31}],
             "flow_to": [], "cost_adjustment_day": 0.5},
            {"type": "solar", "stat_energy_from": "sensor.garage_array_energy",
             "config_entry_solar_forecast": null},
            {"type": "gas", "stat_energy_from": "sensor.gas_meter", "stat_cost": null,
             "entity_energy_price": null, "number_energy_price": 1.1},
            {"type": "water", "stat_energy_from": "sensor.water_meter", "stat_cost": null,
             "entity_energy_price": null, "number_energy_price": null},
        ],
        "device_consumption": [{"stat_consumption": "sensor.fridge_energy", "name": "Fridge"}],
    })
}

fn energy_file() -> String {
    serde_json::to_string_pretty(&json!({
        "version": 1, "minor_version": 1, "key": "energy", "data": seeded_prefs()
    }))
    .unwrap()
}

fn energy_path(ha: &HaInstance) -> std::path::PathBuf {
    ha.config_dir().join(".storage").join("energy")
}

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[tokio::test]
async fn a_teslemetry_grid_meter_moves_only_with_replace_others_stay_and_restore_puts_it_back() {
    if ha::venv_or_skip().is_none() {
        return;
    }
    let mut ha = HaInstance::start(options(vec![
        ("core.entity_registry".into(), registry()),
        ("energy".into(), energy_file()),
    ]))
    .unwrap();
    let c = ha_client(&ha);
    let env = ha_env(&ha);
    // pwsync's meters exist as statistics (a day of backfill would leave the same).
    let t0 = day_start("2025-06-11");
    for (k, (_, id)) in METERS.iter().enumerate() {
        let rows: Vec<StatRow> = (0..3)
            .map(|h| StatRow {
                start: t0 + h * HOUR,
                state: Some((h + 1) as f64 * (k + 1) as f64),
                sum: Some((h + 1) as f64 * (k + 1) as f64),
            })
            .collect();
        import_and_wait(&c, id, &rows).await;
    }
    // The seeded preferences as this HA holds them (2026.11 migrates the grid source to its
    // flat shape on load); what every later step compares with.
    let seeded = prefs(&c).await.expect("HA loaded the seeded preferences");
    let flat = seeded["energy_sources"][0].get("flow_from").is_none();
    let version = c.ha_version().await.unwrap();
    let shape = pwsync_jobs::dashboard::grid_shape(&json!({}), &version);
    assert_eq!(
        flat,
        shape == pwsync_jobs::dashboard::GridShape::Flat,
        "HA {version}"
    );
    if !flat {
        assert_eq!(seeded, seeded_prefs());
    }
    assert_eq!(seeded.to_string().matches(TESLA_GRID).count(), 1);

    // Without --replace: refused in one line naming the meter, nothing changed.
    let o = pwsync(&env, &["energy-dashboard"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(TESLA_GRID) && err.contains("teslemetry") && err.contains("--replace"),
        "{err}"
    );
    assert_eq!(prefs(&c).await, Some(seeded.clone()));

    // A dry run with --replace shows the swap and writes nothing: after HA stops (its final
    // write flushes any save it still holds back, HA saves .storage/energy up to 60 s late)
    // the file is byte for byte what it was before. A restart first flushes whatever HA itself
    // saves (2026.11 may write its migration of the seeded file).
    ha.restart_async().await.unwrap();
    let file_before = std::fs::read_to_string(energy_path(&ha)).unwrap();
    if !flat {
        assert_eq!(file_before, energy_file());
    }
    let o = pwsync(&env, &["energy-dashboard", "--dry-run", "--replace"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let diff_line = |sign: char, id: &str| {
        let key = format!("\"stat_energy_from\": \"{id}\"");
        out.lines().any(|l| l.starts_with(sign) && l.contains(&key))
    };
    assert!(diff_line('-', TESLA_GRID), "{out}");
    assert!(diff_line('+', METERS[0].1), "{out}");
    assert!(out.contains("Dry run: nothing written."), "{out}");
    ha.restart_async().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(energy_path(&ha)).unwrap(),
        file_before,
        "the dry run left .storage/energy as it was"
    );

    // With --replace: pwsync's meter takes the Teslemetry meter's place, tariff and all.
    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("before.json");
    let o = pwsync(
        &env,
        &[
            "energy-dashboard",
            "--replace",
            "--backup",
            backup.to_str().unwrap(),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains(&format!("replace {TESLA_GRID} (teslemetry meter)")),
        "{out}"
    );
    let after = prefs(&c).await.unwrap();
    let sources = after["energy_sources"].as_array().unwrap();
    let want_grid = if flat {
        // The same connection, its import meter swapped and the empty export filled.
        let mut g = seeded["energy_sources"][0].clone();
        assert_eq!(
            g["number_energy_price"], 0.31,
            "the tariff moved with HA's migration"
        );
        g["stat_energy_from"] = json!(METERS[0].1);
        g["stat_energy_to"] = json!(METERS[1].1);
        // HA 2025.12+ shows power flows: the connection gets pwsync's power sensor.
        g["stat_rate"] = json!("sensor.powerwall_grid_power");
        g
    } else {
        json!({"type": "grid", "flow_from": [{"stat_energy_from": METERS[0].1, "stat_cost": null,
                "entity_energy_price": null, "number_energy_price": 0.31}],
               "flow_to": [{"stat_energy_to": METERS[1].1, "stat_compensation": null,
                "entity_energy_price": null, "number_energy_price": null}],
               "cost_adjustment_day": 0.5})
    };
    assert_eq!(sources[0], want_grid);
    for kept in seeded["energy_sources"].as_array().unwrap()[1..].iter() {
        assert!(sources.contains(kept), "{kept} kept");
    }
    assert!(sources
        .iter()
        .any(|s| s["type"] == "solar" && s["stat_energy_from"] == METERS[2].1));
    assert!(sources.iter().any(|s| s["type"] == "battery"
        && s["stat_energy_from"] == METERS[3].1
        && s["stat_energy_to"] == METERS[4].1));
    assert_eq!(after["device_consumption"], seeded["device_consumption"]);
    assert!(!after.to_string().contains(TESLA_GRID));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&backup).unwrap()).unwrap();
    assert_eq!(saved, seeded, "the backup holds the preferences before");

    // The stop flushes a real save to disk: what made the dry-run check above meaningful.
    ha.restart_async().await.unwrap();
    let on_disk = std::fs::read_to_string(energy_path(&ha)).unwrap();
    assert!(
        on_disk.contains(METERS[0].1) && !on_disk.contains(TESLA_GRID),
        "{on_disk}"
    );

    // --restore puts the preferences before back, exactly.
    let o = pwsync(
        &env,
        &[
            "energy-dashboard",
            "--restore",
            backup.to_str().unwrap(),
            "--backup",
            tmp.path().join("undo.json").to_str().unwrap(),
        ],
    );
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(prefs(&c).await, Some(seeded.clone()));

    // A file that is not saved preferences: refused, one line.
    let junk = tmp.path().join("junk.json");
    std::fs::write(&junk, "[1, 2]").unwrap();
    let o = pwsync(
        &env,
        &["energy-dashboard", "--restore", junk.to_str().unwrap()],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("junk.json") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(Path::new(&junk).exists());
    assert_eq!(prefs(&c).await, Some(seeded.clone()));
}
