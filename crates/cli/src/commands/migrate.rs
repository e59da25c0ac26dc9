//! `pwsync migrate`: Teslemetry's (or Tesla Fleet's, Tessie's, the Powerwall integration's)
//! recorded energy onto pwsync's meters, then InfluxDB's energy over it.

use super::backfill::print_report;
use crate::exit;
use crate::output::table;
use anyhow::{bail, Context, Result};
use chrono_tz::Tz;
use clap::ValueEnum;
use pwsync_config::source::Source;
use pwsync_config::target::{Opened, TargetArgs};
use pwsync_config::Config;
use pwsync_energy::local::parse_date;
use pwsync_jobs::backfill::Step;
use pwsync_jobs::migrate::{
    discover, migrate, parse_maps, Mapping, MergeStrategy, MigrateOptions, MigrateReport, Platform,
    RegistryEntity,
};
use pwsync_jobs::range::fmt_ts;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum From {
    Teslemetry,
    TeslaFleet,
    Tessie,
    Powerwall,
}

impl From {
    fn platform(self) -> Platform {
        match self {
            From::Teslemetry => Platform::Teslemetry,
            From::TeslaFleet => Platform::TeslaFleet,
            From::Tessie => Platform::Tessie,
            From::Powerwall => Platform::Powerwall,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// InfluxDB replaces migrated hours wherever it has data.
    PrioritizeInflux,
    /// InfluxDB fills only hours without migrated data.
    PrioritizeTeslemetry,
}

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// Integrations to migrate from (default: all of them).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub from: Vec<From>,
    /// Map a source statistic to a pwsync meter, e.g. sensor.my_home_home_usage=home.
    #[arg(long = "map", value_name = "SRC=DST")]
    pub maps: Vec<String>,
    /// First local day to migrate (default: the sources' first day).
    #[arg(long)]
    pub start_date: Option<String>,
    /// Last local day to migrate, included (default: up to the last compiled hour).
    #[arg(long)]
    pub end_date: Option<String>,
    /// Compute and report both phases, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace hours that already hold pwsync statistics (default: keep them).
    #[arg(long)]
    pub overwrite: bool,
    /// Only phase 1: do not apply InfluxDB data afterwards.
    #[arg(long)]
    pub no_auto_backfill: bool,
    #[arg(long, value_enum, default_value_t = Strategy::PrioritizeInflux)]
    pub merge_strategy: Strategy,
    /// HA's configuration directory, for its entity registry when HA is stopped (default: the
    /// directory of an SQLite recorder database).
    #[arg(long)]
    pub ha_config: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: MigrateArgs, cfg: &Config) -> Result<ExitCode> {
    let source = pwsync_config::source::from_config(cfg)?;
    let target = Opened::open(&args.target, cfg, args.dry_run).await?;
    let result = migrate_into(&args, cfg, &source, &target).await;
    target.close().await;
    let report = result?;
    let phase2_rows = report.phase2.backfill.as_ref().map_or(0, |b| b.rows);
    pwsync_daemon::progress::emit_result(&serde_json::json!({ "rows": report.rows + phase2_rows }));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_migration(&report, target.tz);
        if let Some(b) = target.backup_path() {
            println!(
                "Backup of the recorder database before writing: {}",
                b.display()
            );
        }
        if !args.dry_run && !report.phase2_failed() {
            println!(
                "Next: show pwsync's meters in HA's Energy dashboard (HA running): `pwsync energy-dashboard --dry-run`, then `pwsync energy-dashboard` (with --replace to take the places of the Tesla meters it names)"
            );
        }
    }
    if report.phase2_failed() {
        eprintln!(
            "error: the migration is kept ({} rows written), but applying InfluxDB data failed: {}. Run it again with: {}",
            report.rows,
            report.phase2.error.as_deref().unwrap_or_default(),
            report.phase2.rerun.as_deref().unwrap_or_default()
        );
        return Ok(ExitCode::from(exit::MIGRATED_BACKFILL_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate_into(
    args: &MigrateArgs,
    cfg: &Config,
    source: &Source,
    target: &Opened,
) -> Result<MigrateReport> {
    let platforms: Vec<Platform> = if args.from.is_empty() {
        Platform::ALL.to_vec()
    } else {
        args.from.iter().map(|f| f.platform()).collect()
    };
    let registry = registry(args, target).await?;
    if registry.is_none() && !args.json {
        eprintln!(
            "note: HA's entity registry is not available (pass --ha-config DIR with HA stopped); matching entity ids by name instead"
        );
    }
    let stats = target.store().list().await?;
    let maps = parse_maps(&cfg.site, &args.maps)?;
    let mappings = discover(&platforms, registry.as_deref(), &stats, &cfg.site, &maps)?;
    if mappings.is_empty() {
        bail!(
            "HA holds no {} energy statistics to migrate: name one with --map SRC=DST (e.g. --map sensor.my_home_home_usage=home)",
            platforms.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("/")
        );
    }
    if !args.json {
        print_mappings(&mappings);
    }
    let opts = MigrateOptions {
        site: cfg.site.clone(),
        mappings,
        start_date: args.start_date.as_deref().map(parse_date).transpose()?,
        end_date: args.end_date.as_deref().map(parse_date).transpose()?,
        overwrite: args.overwrite,
        dry_run: args.dry_run,
        auto_backfill: !args.no_auto_backfill,
        strategy: match args.merge_strategy {
            Strategy::PrioritizeInflux => MergeStrategy::PrioritizeInflux,
            Strategy::PrioritizeTeslemetry => MergeStrategy::PrioritizeTeslemetry,
        },
        tz: target.tz,
        now: chrono::Utc::now().timestamp(),
        max_kwh_per_hour: cfg.limits.max_power_kw,
    };
    if !args.dry_run && !args.json {
        if let Some(note) = target.backup_note().await? {
            eprintln!("{note}");
        }
    }
    let mut steps = pwsync_daemon::progress::StepProgress::from_env();
    let mut progress = |s: Step| {
        steps.step(&s);
    };
    Ok(migrate(source, target.store(), &opts, &mut progress).await?)
}

/// The entity registry: from HA when it runs, else from its `.storage` (None when absent).
async fn registry(args: &MigrateArgs, target: &Opened) -> Result<Option<Vec<RegistryEntity>>> {
    if let Some(ha) = target.ha() {
        let entries = ha.entity_registry_list().await?;
        return Ok(Some(
            entries
                .into_iter()
                .map(pwsync_config::target::registry_entity)
                .collect(),
        ));
    }
    let dir = args.ha_config.clone().or_else(|| {
        target
            .sqlite_file()
            .and_then(|f| f.parent().map(Path::to_path_buf))
    });
    let Some(dir) = dir else { return Ok(None) };
    let file = dir.join(".storage").join("core.entity_registry");
    if !file.is_file() {
        if args.ha_config.is_some() {
            bail!(
                "{} not found: --ha-config must be HA's configuration directory (the one with .storage)",
                file.display()
            );
        }
        return Ok(None);
    }
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not HA's entity registry", file.display()))?;
    let entries: Vec<pwsync_ha::RegistryEntry> =
        serde_json::from_value(v["data"]["entities"].clone())
            .with_context(|| format!("{} is not HA's entity registry", file.display()))?;
    Ok(Some(
        entries
            .into_iter()
            .map(pwsync_config::target::registry_entity)
            .collect(),
    ))
}

fn print_mappings(mappings: &[Mapping]) {
    let mut t = table(&[
        "source statistic",
        "integration",
        "found by",
        "unit",
        "→ pwsync meter",
    ]);
    for m in mappings {
        t.add_row(vec![
            m.source.clone(),
            m.platform.clone().unwrap_or_else(|| "-".into()),
            format!("{:?}", m.found).to_lowercase(),
            m.unit.clone().unwrap_or_default(),
            m.target.clone(),
        ]);
    }
    println!("What maps to what:\n{t}");
}

fn opt_ts(t: Option<i64>, tz: Tz) -> String {
    t.map(|t| fmt_ts(t, tz)).unwrap_or_else(|| "-".into())
}

fn print_migration(r: &MigrateReport, tz: Tz) {
    let verb = if r.dry_run {
        "would migrate"
    } else {
        "migrated"
    };
    println!(
        "Phase 1: the sources' hourly energy (differences of their sums, in kWh) {verb} into pwsync's meters{}:",
        if r.overwrite {
            ", replacing hours pwsync already had"
        } else {
            ", keeping hours pwsync already had"
        }
    );
    let mut t = table(&[
        "source",
        "first hour",
        "last hour",
        "hours",
        "kWh",
        "rows",
        "kept",
        "rejected",
    ]);
    for s in &r.sources {
        t.add_row(vec![
            s.source.clone(),
            opt_ts(s.first, tz),
            opt_ts(s.last, tz),
            s.hours.to_string(),
            format!("{:.3}", s.kwh),
            s.rows_written.to_string(),
            s.kept_existing.to_string(),
            s.rejected.len().to_string(),
        ]);
    }
    println!("{t}");
    for s in &r.sources {
        for x in &s.rejected {
            println!(
                "  not migrated: {} hour {}: {:.3} kWh, {}",
                s.source,
                fmt_ts(x.start, tz),
                x.kwh,
                x.reason
            );
        }
    }
    println!(
        "Phase 2: {}{}",
        r.phase2.why,
        if r.phase2.ran && r.dry_run {
            " (dry run: computed on top of phase 1, nothing written)"
        } else {
            ""
        }
    );
    if let Some(b) = &r.phase2.backfill {
        print_report(b, tz);
    }
    if let Some(e) = &r.phase2.error {
        println!("Phase 2 failed: {e}");
    }
    println!(
        "pwsync's meters {}:",
        if r.dry_run { "as they would be" } else { "now" }
    );
    let mut t = table(&[
        "statistic",
        "rows",
        "first hour",
        "last hour",
        "kWh before",
        "kWh after",
        "negative hours",
        "largest hour kWh",
    ]);
    for c in &r.chains {
        t.add_row(vec![
            c.statistic_id.clone(),
            c.rows.to_string(),
            opt_ts(c.first, tz),
            opt_ts(c.last, tz),
            format!("{:.3}", c.kwh_before),
            format!("{:.3}", c.kwh_after),
            c.negative_hours.to_string(),
            format!("{:.3}", c.max_hour_kwh),
        ]);
    }
    println!("{t}");
    println!(
        "{} rows in phase 1{}, {:.1} s",
        r.rows,
        if r.dry_run {
            " (dry run, nothing written)"
        } else {
            ""
        },
        r.seconds
    );
}
