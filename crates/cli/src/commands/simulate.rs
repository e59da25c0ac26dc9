//! `pwsync simulate`: a realistic Powerwall-Dashboard database in a real InfluxDB.

use anyhow::{bail, Result};
use chrono::NaiveDate;
use pwsync_config::source::Source;
use pwsync_config::Config;
use pwsync_energy::local::{local_day_range, parse_date, LAST_DATE};
use pwsync_influx::sim::{self, Simulator};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Number of days to write.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    /// First local day, YYYY-MM-DD.
    #[arg(long)]
    pub start: String,
    /// Seed: the same seed writes the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write although the range already holds points (they are overwritten).
    #[arg(long)]
    pub force: bool,
}

pub async fn run(args: SimulateArgs, cfg: &Config) -> Result<()> {
    let tz = cfg.tz()?;
    let first = parse_date(&args.start)?;
    check_days(first, args.days)?;
    let origin = local_day_range(first, tz).0;
    let source = pwsync_config::source::from_config(cfg)?;
    if !args.force {
        refuse_to_overwrite(&source, cfg, &args, origin, tz).await?;
    }
    let n = load(&source, args.seed, origin, args.days, tz).await?;
    println!(
        "wrote {n} one-minute rows ({} days from {}) into {} database '{}'",
        args.days,
        args.start,
        pwsync_redact::url(&cfg.influxdb.url),
        cfg.influxdb.database
    );
    Ok(())
}

/// The defaults (localhost:8086, database `powerwall`) are a real Powerwall-Dashboard
/// install's: never replace its history without `--force`.
async fn refuse_to_overwrite(
    source: &Source,
    cfg: &Config,
    args: &SimulateArgs,
    origin: i64,
    tz: chrono_tz::Tz,
) -> Result<()> {
    let end = origin + args.days * 86_400;
    let points = sim::existing_points(&source.client, origin, end).await?;
    anyhow::ensure!(
        points == 0,
        "InfluxDB database '{}' at {} already holds {points} points in the {} days from {} \
         ({}): simulate would overwrite them; point influxdb.database at a database of its own, \
         or pass --force to overwrite",
        cfg.influxdb.database,
        pwsync_redact::url(&cfg.influxdb.url),
        args.days,
        args.start,
        tz.name()
    );
    Ok(())
}

/// `days` from `first` end by the last day InfluxDB can store (and cannot overflow).
fn check_days(first: NaiveDate, days: i64) -> Result<()> {
    let most = (LAST_DATE - first).num_days() + 1;
    if !(1..=most).contains(&days) {
        bail!("--days must be from 1 to {most}: InfluxDB stores no time after {LAST_DATE}");
    }
    Ok(())
}

/// Create the schema and write `days` of simulated data from `origin`.
pub async fn load(
    source: &Source,
    seed: u64,
    origin: i64,
    days: i64,
    tz: chrono_tz::Tz,
) -> Result<usize> {
    let t0 = Instant::now();
    source.client.ping().await?;
    sim::create_schema(&source.client).await?;
    let mut s = Simulator::new(seed, origin, tz);
    let n = sim::write(&source.client, &mut s, origin, origin + days * 86_400).await?;
    tracing::info!(
        rows = n,
        secs = t0.elapsed().as_secs_f64(),
        "simulated data written"
    );
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_past_influxdbs_last_day_or_overflowing_are_refused() {
        let first = parse_date("2262-04-01").unwrap();
        check_days(first, 10).unwrap();
        for days in [0, -1, 11, i64::MAX / 86_400 + 1, i64::MAX] {
            let e = check_days(first, days).unwrap_err().to_string();
            assert!(
                e.contains("from 1 to 10") && e.contains("2262-04-10"),
                "{days}: {e}"
            );
        }
    }
}
