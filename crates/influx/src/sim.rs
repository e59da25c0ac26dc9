//! A deterministic Powerwall-Dashboard database: 1-minute `autogen.http` rows with seasonal
//! solar, cloudy days, a home load, a 13.5 kWh battery, a grid that balances the rest exactly,
//! `pod.http` backup reserve, `grid.http` status with an island period, and data gaps.
//!
//! Every minute is a pure function of (seed, time, battery state), so the same seed always
//! writes the same database, and tests can recompute expected energy from [`Simulator`] itself.
//!
//! Gap schedule (no row in any measurement), relative to the simulation origin:
//! - each 30-day block: three short gaps of 2–10 minutes at seeded places;
//! - each 60-day block: one gap of 2–6 hours;
//! - day 100 from 06:00 UTC: a 48-hour outage.
//!
//! Island period: day 150 from 17:00 UTC for 3 hours (`grid_status` 0, no grid flow, the
//! battery carries the house; load is shed if the battery runs empty).

use crate::{InfluxClient, InfluxError};
use chrono::{DateTime, Datelike, TimeZone};
use chrono_tz::Tz;

/// Solar array peak (W); no field can exceed [`MAX_POWER_W`].
pub const SOLAR_PEAK_W: f64 = 7_600.0;
pub const BATTERY_WH: f64 = 13_500.0;
pub const BATTERY_MAX_W: f64 = 5_000.0;
/// The most any field of the simulation can reach (W): the physical limit for checks.
pub const MAX_POWER_W: f64 = 12_000.0;
pub const RESERVE_PCT: f64 = 20.0;

/// One simulated minute of `autogen.http`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minute {
    pub t: i64,
    pub home: f64,
    pub solar: f64,
    pub from_grid: f64,
    pub to_grid: f64,
    pub from_pw: f64,
    pub to_pw: f64,
    /// Gateway scale: app % = (p − 5) / 0.95.
    pub percentage: f64,
    pub grid_status: i8,
}

impl Minute {
    pub fn field(&self, f: pwsync_energy::Field) -> f64 {
        use pwsync_energy::Field::*;
        match f {
            Home => self.home,
            Solar => self.solar,
            FromGrid => self.from_grid,
            ToGrid => self.to_grid,
            FromPw => self.from_pw,
            ToPw => self.to_pw,
        }
    }
}

/// splitmix64: a stateless hash, so each minute's noise does not depend on generation order.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(seed: u64, a: i64, salt: u64) -> f64 {
    (mix(seed ^ mix(a as u64 ^ salt.wrapping_mul(0x1000_0000_01B3))) >> 11) as f64
        / (1u64 << 53) as f64
}

#[derive(Debug, Clone)]
pub struct Simulator {
    pub seed: u64,
    pub origin: i64,
    pub tz: Tz,
    soc_wh: f64,
    next: i64,
}

impl Simulator {
    /// Starts at `origin` (rounded down to a minute) with the battery at 50 %.
    pub fn new(seed: u64, origin: i64, tz: Tz) -> Self {
        let origin = origin - origin.rem_euclid(60);
        Simulator {
            seed,
            origin,
            tz,
            soc_wh: BATTERY_WH * 0.5,
            next: origin,
        }
    }

    /// Whether minute `t` is missing from the database (a logging gap).
    pub fn is_gap(&self, t: i64) -> bool {
        let rel = t - self.origin;
        let day = 86_400;
        let outage = 100 * day + 6 * 3600;
        if (outage..outage + 48 * 3600).contains(&rel) {
            return true;
        }
        let block30 = rel.div_euclid(30 * day);
        for k in 0..3u64 {
            let at = (unit(self.seed, block30, 11 + k) * 29.0 * day as f64) as i64;
            let len = 120 + (unit(self.seed, block30, 21 + k) * 480.0) as i64;
            let s = block30 * 30 * day + at;
            if (s..s + len).contains(&rel) {
                return true;
            }
        }
        let block60 = rel.div_euclid(60 * day);
        let at = (unit(self.seed, block60, 31) * 58.0 * day as f64) as i64;
        let len = 7200 + (unit(self.seed, block60, 32) * 4.0 * 3600.0) as i64;
        let s = block60 * 60 * day + at;
        (s..s + len).contains(&rel)
    }

    /// Whether the grid is down (islanded) at `t`.
    pub fn is_island(&self, t: i64) -> bool {
        let s = self.origin + 150 * 86_400 + 17 * 3600;
        (s..s + 3 * 3600).contains(&t)
    }

    fn solar_w(&self, t: i64) -> f64 {
        // Solar time from longitude (−118°): DST never moves the sun.
        let solar_hour = ((t as f64 / 3600.0) - 7.87).rem_euclid(24.0);
        let doy = DateTime::from_timestamp(t, 0)
            .map(|d| d.ordinal())
            .unwrap_or(1) as f64;
        let season = (2.0 * std::f64::consts::PI * (doy - 80.0) / 365.0).sin();
        let daylen = 12.0 + 2.4 * season;
        let rise = 12.0 - daylen / 2.0;
        let x = (solar_hour - rise) / daylen;
        if !(0.0..=1.0).contains(&x) {
            return 0.0;
        }
        let day = t.div_euclid(86_400);
        let cloudy = unit(self.seed, day, 1) < 0.22;
        let sky = if cloudy {
            0.15 + 0.35 * unit(self.seed, day, 2)
        } else {
            0.85 + 0.15 * unit(self.seed, day, 3)
        };
        let flicker = if cloudy {
            0.6 + 0.4 * unit(self.seed, t, 4)
        } else {
            0.97 + 0.03 * unit(self.seed, t, 4)
        };
        let amp = 0.72 + 0.28 * season;
        SOLAR_PEAK_W * amp * sky * flicker * (std::f64::consts::PI * x).sin().powf(1.2)
    }

    fn load_w(&self, t: i64) -> f64 {
        let local = self.tz.timestamp_opt(t, 0).unwrap();
        let h = local.time().hour_f();
        let bump = |c: f64, w: f64, a: f64| a * (-((h - c) / w).powi(2)).exp();
        let base = 350.0 + 150.0 * unit(self.seed, t.div_euclid(86_400), 5);
        let pattern = bump(7.5, 1.2, 900.0) + bump(19.0, 2.0, 1_600.0) + bump(13.0, 3.0, 300.0);
        let noise = 250.0 * unit(self.seed, t, 6);
        let kettle = if unit(self.seed, t.div_euclid(600), 7) < 0.04 {
            2_200.0
        } else {
            0.0
        };
        base + pattern + noise + kettle
    }

    /// Generate the minute starting at `t` (must be the next minute) and advance the battery.
    fn step(&mut self, t: i64) -> Minute {
        let island = self.is_island(t);
        let solar = self.solar_w(t);
        let mut load = self.load_w(t);
        let hours = 1.0 / 60.0;
        let reserve_wh = BATTERY_WH * RESERVE_PCT / 100.0;
        let (mut to_pw, mut from_pw, mut from_grid, mut to_grid) = (0.0, 0.0, 0.0, 0.0);
        let surplus = solar - load;
        if surplus >= 0.0 {
            let room = (BATTERY_WH - self.soc_wh) / hours;
            to_pw = surplus.min(BATTERY_MAX_W).min(room.max(0.0));
            if !island {
                to_grid = surplus - to_pw;
            }
            // islanded with a full battery: the inverter curtails the excess (solar below).
        } else {
            let floor = if island { 0.0 } else { reserve_wh };
            let avail = ((self.soc_wh - floor) / hours).max(0.0);
            from_pw = (-surplus).min(BATTERY_MAX_W).min(avail);
            if island {
                load = solar + from_pw; // load shed
            } else {
                from_grid = -surplus - from_pw;
            }
        }
        self.soc_wh = (self.soc_wh + (to_pw - from_pw) * hours).clamp(0.0, BATTERY_WH);
        let solar = if island && surplus >= 0.0 {
            load + to_pw
        } else {
            solar
        };
        let home = solar + from_grid - to_grid + from_pw - to_pw;
        let app = 100.0 * self.soc_wh / BATTERY_WH;
        let _ = load;
        Minute {
            t,
            home,
            solar,
            from_grid,
            to_grid,
            from_pw,
            to_pw,
            percentage: app * 0.95 + 5.0,
            grid_status: if island { 0 } else { 1 },
        }
    }

    /// Minutes in `[start, end)` that exist in the database (gaps skipped). Minutes before
    /// `start` are simulated too (the battery has a history) but not returned.
    pub fn minutes(&mut self, start: i64, end: i64) -> impl Iterator<Item = Minute> + '_ {
        std::iter::from_fn(move || loop {
            if self.next >= end {
                return None;
            }
            let t = self.next;
            self.next += 60;
            let m = self.step(t);
            if t >= start && !self.is_gap(t) {
                return Some(m);
            }
        })
    }
}

trait HourF {
    fn hour_f(&self) -> f64;
}

impl HourF for chrono::NaiveTime {
    fn hour_f(&self) -> f64 {
        use chrono::Timelike;
        self.hour() as f64 + self.minute() as f64 / 60.0
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Create the database and Powerwall-Dashboard's retention policies (SPEC §2).
pub async fn create_schema(client: &InfluxClient) -> Result<(), InfluxError> {
    let db = &client.db;
    let mut q = vec![format!("CREATE DATABASE {db}")];
    q.push(format!(
        "CREATE RETENTION POLICY \"raw\" ON {db} DURATION 3d REPLICATION 1"
    ));
    for rp in [
        "kwh", "daily", "monthly", "grid", "pod", "strings", "vitals", "pwtemps", "alerts", "fans",
    ] {
        q.push(format!(
            "CREATE RETENTION POLICY \"{rp}\" ON {db} DURATION INF REPLICATION 1"
        ));
    }
    client.execute(&q.join("; ")).await
}

fn tags(tz: Tz, t: i64) -> String {
    let d = tz.timestamp_opt(t, 0).unwrap();
    format!("month={},year={}", MONTHS[d.month0() as usize], d.year())
}

/// Write the simulation's minutes in `[start, end)` but never after now (a Powerwall-Dashboard
/// has no data from the future; [`written_until`] says where it stops), in batches:
/// autogen.http, pod.http every 5 minutes, grid.http every minute. Returns the number of
/// `autogen.http` rows.
pub async fn write(
    client: &InfluxClient,
    sim: &mut Simulator,
    start: i64,
    end: i64,
) -> Result<usize, InfluxError> {
    let end = written_until(end);
    const BATCH: usize = 10_000;
    let tz = sim.tz;
    let (mut http, mut pod, mut grid) = (String::new(), String::new(), String::new());
    let mut n = 0;
    let mut in_batch = 0;
    for m in sim.minutes(start, end) {
        let tg = tags(tz, m.t);
        http.push_str(&format!(
            "http,{tg} home={},solar={},from_grid={},to_grid={},from_pw={},to_pw={},percentage={} {}\n",
            m.home, m.solar, m.from_grid, m.to_grid, m.from_pw, m.to_pw, m.percentage, m.t
        ));
        grid.push_str(&format!(
            "http,{tg} grid_status={}i {}\n",
            m.grid_status, m.t
        ));
        if m.t % 300 == 0 {
            pod.push_str(&format!(
                "http,{tg} backup_reserve_percent={RESERVE_PCT} {}\n",
                m.t
            ));
        }
        n += 1;
        in_batch += 1;
        if in_batch == BATCH {
            flush(client, &mut http, &mut pod, &mut grid).await?;
            in_batch = 0;
        }
    }
    flush(client, &mut http, &mut pod, &mut grid).await?;
    Ok(n)
}

/// Where [`write`] of a range ending at `end` stops: `end`, or just after the current minute.
pub fn written_until(end: i64) -> i64 {
    end.min(crate::now() + 1)
}

async fn flush(
    client: &InfluxClient,
    http: &mut String,
    pod: &mut String,
    grid: &mut String,
) -> Result<(), InfluxError> {
    for (rp, body) in [("autogen", http), ("pod", pod), ("grid", grid)] {
        if !body.is_empty() {
            client.write_lines(rp, std::mem::take(body)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_is_exact_and_fields_are_physical() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let origin = 1_704_067_200; // 2024-01-01
        let mut sim = Simulator::new(7, origin, tz);
        let mut count = 0;
        for m in sim.minutes(origin, origin + 200 * 86_400) {
            count += 1;
            assert_eq!(
                m.home,
                m.solar + m.from_grid - m.to_grid + m.from_pw - m.to_pw
            );
            for v in [m.home, m.solar, m.from_grid, m.to_grid, m.from_pw, m.to_pw] {
                assert!((0.0..=MAX_POWER_W).contains(&v), "{m:?}");
            }
            assert!((5.0..=100.0).contains(&m.percentage));
        }
        // 200 days minus the 48 h outage and the shorter gaps
        assert!(
            count < 200 * 1440 - 48 * 60 && count > 200 * 1440 - 48 * 60 - 3000,
            "{count}"
        );
    }

    #[test]
    fn same_seed_same_data() {
        let tz: Tz = "UTC".parse().unwrap();
        let a: Vec<Minute> = Simulator::new(3, 0, tz).minutes(0, 86_400 * 3).collect();
        let b: Vec<Minute> = Simulator::new(3, 0, tz).minutes(0, 86_400 * 3).collect();
        assert_eq!(a, b);
        let c: Vec<Minute> = Simulator::new(4, 0, tz).minutes(0, 86_400 * 3).collect();
        assert_ne!(a, c);
    }
}
