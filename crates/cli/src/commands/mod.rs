//! One module per command. Each is thin: parse → load → call the crates → print.

pub mod backfill;
mod chart;
pub mod check;
mod demo;
mod doctor;
pub mod energy;
mod energy_dashboard;
pub mod migrate;
mod repair;
pub mod serve;
mod simulate;

use crate::config::Config;
use anyhow::Result;
use clap::Subcommand;
use std::path::Path;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A demo on embedded defaults: a real InfluxDB with a simulated year, read by pwsync.
    Demo(demo::DemoArgs),
    /// kWh per field per local day from InfluxDB, and the gaps found.
    Energy(energy::EnergyArgs),
    /// Write a simulated Powerwall-Dashboard database into the configured InfluxDB.
    Simulate(simulate::SimulateArgs),
    /// Live sensors over MQTT discovery (the daemon).
    Serve(serve::ServeArgs),
    /// Historical InfluxDB energy into HA's long-term statistics.
    Backfill(backfill::BackfillArgs),
    /// Teslemetry (and other Tesla integrations') statistics onto pwsync's sensors, then backfill.
    Migrate(migrate::MigrateArgs),
    /// pwsync's meters into HA's Energy dashboard, merged with what is there (undo: --restore).
    EnergyDashboard(energy_dashboard::EnergyDashboardArgs),
    /// Find spikes, negative hours, gaps and disagreements with InfluxDB.
    Check(check::CheckArgs),
    /// Fix what `check` finds by splicing InfluxDB's energy into the bad hours.
    Repair(repair::RepairArgs),
    /// Connect to everything configured and say what to do next.
    Doctor(doctor::DoctorArgs),
}

pub async fn run(cmd: Command, config: Option<&Path>) -> Result<ExitCode> {
    let ok = |_| ExitCode::SUCCESS;
    match cmd {
        Command::Demo(a) => demo::run(a).await.map(ok),
        Command::Energy(a) => energy::run(a, &Config::load(config)?).await.map(ok),
        Command::Simulate(a) => simulate::run(a, &Config::load(config)?).await.map(ok),
        Command::Backfill(a) => backfill::run(a, &Config::load(config)?).await.map(ok),
        Command::Migrate(a) => migrate::run(a, &Config::load(config)?).await,
        Command::EnergyDashboard(a) => energy_dashboard::run(a, &Config::load(config)?, config)
            .await
            .map(ok),
        Command::Check(a) => check::run(a, &Config::load(config)?).await,
        Command::Repair(a) => repair::run(a, &Config::load(config)?).await.map(ok),
        Command::Doctor(a) => doctor::run(a, &Config::load(config)?).await,
        Command::Serve(a) => serve::run(a, &Config::load(config)?).await,
    }
}
