//! One module per command. Each is thin: parse → load → call the crates → print.

pub mod backfill;
mod chart;
pub mod check;
mod completions;
mod demo;
mod doctor;
pub mod energy;
mod energy_dashboard;
mod health;
pub mod migrate;
mod repair;
pub mod serve;
mod simulate;

use anyhow::Result;
use clap::Subcommand;
use pwsync_config::Config;
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
    /// Exit 0 while `serve` publishes, 1 when its last successful poll is stale (HEALTHCHECK).
    Health(health::HealthArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the man page pwsync(1), or write every page into --dir.
    Man(completions::ManArgs),
}

/// The configuration: the add-on's (`--addon`) or pwsync.toml ← `PWSYNC_*`.
async fn load(config: Option<&Path>, addon: bool) -> Result<Config> {
    if addon {
        pwsync_config::addon::load(config).await
    } else {
        Config::load(config)
    }
}

pub async fn run(cmd: Command, config: Option<&Path>, addon: bool) -> Result<ExitCode> {
    let ok = |_| ExitCode::SUCCESS;
    match cmd {
        Command::Demo(a) => demo::run(a).await.map(ok),
        Command::Energy(a) => energy::run(a, &load(config, addon).await?).await.map(ok),
        Command::Simulate(a) => simulate::run(a, &load(config, addon).await?).await.map(ok),
        Command::Backfill(a) => backfill::run(a, &load(config, addon).await?).await.map(ok),
        Command::Migrate(a) => migrate::run(a, &load(config, addon).await?).await,
        Command::EnergyDashboard(a) => {
            energy_dashboard::run(a, &load(config, addon).await?, config)
                .await
                .map(ok)
        }
        Command::Check(a) => check::run(a, &load(config, addon).await?).await,
        Command::Repair(a) => repair::run(a, &load(config, addon).await?).await.map(ok),
        Command::Doctor(a) => doctor::run(a, &load(config, addon).await?).await,
        Command::Serve(a) => serve::run(a, &load(config, addon).await?, config, addon).await,
        Command::Health(a) => health::run(a),
        Command::Completions(a) => {
            completions::completions(a);
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(a) => completions::man(a).map(ok),
    }
}
