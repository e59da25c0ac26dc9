//! `pwsync simulate`: a realistic Powerwall-Dashboard database in a real InfluxDB.

use crate::config::Config;
use crate::source::Source;
use anyhow::Result;
use pwsync_energy::local::{local_day_range, parse_date};
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
}

pub async fn run(args: SimulateArgs, cfg: &Config) -> Result<()> {
    let tz = cfg.tz()?;
    anyhow::ensure!(args.days > 0, "--days must be at least 1");
    let origin = local_day_range(parse_date(&args.start)?, tz).0;
    let source = crate::source::from_config(cfg)?;
    let n = load(&source, args.seed, origin, args.days, tz).await?;
    println!(
        "wrote {n} one-minute rows ({} days from {}) into {} database '{}'",
        args.days, args.start, cfg.influxdb.url, cfg.influxdb.database
    );
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
