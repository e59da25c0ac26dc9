//! One module per command. Each is thin: parse → load → call the crates → print.

pub mod backfill;
mod chart;
pub mod check;
mod demo;
mod doctor;
pub mod energy;
pub mod migrate;
mod repair;
mod simulate;

use crate::config::Config;
use crate::exit;
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
    Serve(NotYet),
    /// Historical InfluxDB energy into HA's long-term statistics.
    Backfill(backfill::BackfillArgs),
    /// Teslemetry (and other Tesla integrations') statistics onto pwsync's sensors, then backfill.
    Migrate(migrate::MigrateArgs),
    /// Find spikes, negative hours, gaps and disagreements with InfluxDB.
    Check(check::CheckArgs),
    /// Fix what `check` finds by splicing InfluxDB's energy into the bad hours.
    Repair(repair::RepairArgs),
    /// Connect to everything configured and say what to do next.
    Doctor(doctor::DoctorArgs),
}

/// Arguments of a command that a later version fills in.
#[derive(clap::Args, Debug)]
pub struct NotYet {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub async fn run(cmd: Command, config: Option<&Path>) -> Result<ExitCode> {
    let name = match cmd {
        Command::Demo(a) => return demo::run(a).await.map(|_| ExitCode::SUCCESS),
        Command::Energy(a) => {
            energy::run(a, &Config::load(config)?).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Simulate(a) => {
            simulate::run(a, &Config::load(config)?).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Backfill(a) => {
            backfill::run(a, &Config::load(config)?).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Migrate(a) => return migrate::run(a, &Config::load(config)?).await,
        Command::Check(a) => return check::run(a, &Config::load(config)?).await,
        Command::Repair(a) => {
            repair::run(a, &Config::load(config)?).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Doctor(a) => return doctor::run(a, &Config::load(config)?).await,
        Command::Serve(_) => "serve",
    };
    eprintln!("error: `pwsync {name}` is not yet implemented in this version");
    Ok(ExitCode::from(exit::NOT_IMPLEMENTED))
}
