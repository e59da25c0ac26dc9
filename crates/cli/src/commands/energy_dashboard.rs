//! `pwsync energy-dashboard`: pwsync's lifetime meters into HA's Energy dashboard preferences,
//! merged with what is there, previewed as a diff, the previous preferences saved for
//! `--restore`.

use anyhow::{bail, Context, Result};
use pwsync_config::target::ha_client;
use pwsync_config::target::registry_entity as entity;
use pwsync_config::Config;
use pwsync_ha::HaClient;
use pwsync_jobs::dashboard::{self, default_prefs, DashboardPlan, Replace, Slot, REPLACE_POWER};
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct EnergyDashboardArgs {
    /// Print the preferences before and after as a diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Put pwsync's meters in place of a Tesla integration's (or another grid meter, or
    /// pwsync's own daily/monthly totals) where one fills the slot, and pwsync's power sensors
    /// in place of those you chose. Alone: everywhere; with names: only there (grid_import,
    /// grid_export, solar, battery_discharge, battery_charge, power).
    #[arg(long, value_name = "PLACES", num_args = 0.., value_delimiter = ',')]
    pub replace: Option<Vec<String>>,
    /// Put back the preferences an earlier run saved in FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "replace")]
    pub restore: Option<PathBuf>,
    /// Where to save the preferences before writing (default: energy-prefs-<time>.json beside
    /// the configuration file, or in the current directory).
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Outcome<'a> {
    dry_run: bool,
    ha_version: &'a str,
    #[serde(flatten)]
    plan: &'a DashboardPlan,
    changed: bool,
    /// Where the preferences before were saved (a real run that changed something).
    backup: Option<PathBuf>,
    restored_from: Option<&'a Path>,
}

pub async fn run(args: EnergyDashboardArgs, cfg: &Config, config: Option<&Path>) -> Result<()> {
    let replace = match &args.replace {
        None => Replace::none(),
        Some(names) if names.is_empty() => Replace::all(),
        Some(names) => Replace::from_names(names).map_err(anyhow::Error::msg)?,
    };
    let client = ha_client(cfg)?;
    let version = client.ha_version().await?;
    let before = client
        .energy_get_prefs()
        .await?
        .unwrap_or_else(default_prefs);
    let plan = match &args.restore {
        Some(file) => restore_plan(&before, file, &version)?,
        None => merge_plan(&client, cfg, &before, &version, &replace).await?,
    };
    tell_panel(&plan, cfg);
    if let Some(refusal) = plan.refusal() {
        bail!(refusal);
    }
    let mut backup = None;
    if plan.changed() && !args.dry_run {
        let file = args
            .backup
            .clone()
            .unwrap_or_else(|| default_backup(config));
        write_backup(&file, &before)?;
        client.energy_save_prefs(&changed_keys(&plan)).await?;
        backup = Some(file);
    }
    if args.json {
        let out = Outcome {
            dry_run: args.dry_run,
            ha_version: &version,
            plan: &plan,
            changed: plan.changed(),
            backup,
            restored_from: args.restore.as_deref(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print(&plan, &args, cfg, backup.as_deref());
    }
    Ok(())
}

async fn merge_plan(
    client: &HaClient,
    cfg: &Config,
    before: &Value,
    version: &str,
    replace: &Replace,
) -> Result<DashboardPlan> {
    let stats = client.list_statistic_ids(None).await?;
    let missing: Vec<String> = Slot::ALL
        .iter()
        .map(|s| s.meter(&cfg.site))
        .filter(|id| !stats.iter().any(|s| &s.statistic_id == id))
        .collect();
    if !missing.is_empty() {
        bail!(
            "HA has no statistics of {}: run `pwsync backfill --all` first (the dashboard would show nothing for them)",
            missing.join(", ")
        );
    }
    let registry: Vec<_> = client
        .entity_registry_list()
        .await?
        .into_iter()
        .map(entity)
        .collect();
    Ok(dashboard::plan(
        before, &cfg.site, &registry, version, replace,
    ))
}

/// For the panel: what the user may choose to replace (a checkbox each), and whether the plan
/// changes anything (no Apply when it does not).
fn tell_panel(plan: &DashboardPlan, cfg: &Config) {
    let mut choices: Vec<Value> = Vec::new();
    for o in &plan.blocked {
        if !choices.iter().any(|c| c["name"] == o.slot.name()) {
            choices.push(serde_json::json!({
                "name": o.slot.name(),
                "label": format!("Replace {} with {}", o.describe(), o.slot.meter(&cfg.site)),
            }));
        }
    }
    if !plan.power_kept.is_empty() {
        choices.push(serde_json::json!({
            "name": REPLACE_POWER,
            "label": format!(
                "Replace your power sensor{} ({}) with pwsync's",
                if plan.power_kept.len() > 1 { "s" } else { "" },
                plan.power_kept.join(", ")
            ),
        }));
    }
    pwsync_daemon::progress::emit_result(&serde_json::json!({
        "changed": plan.changed() && plan.blocked.is_empty(),
        "choices": choices,
    }));
}

/// The plan that puts `file`'s preferences back.
fn restore_plan(before: &Value, file: &Path, version: &str) -> Result<DashboardPlan> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let saved: Value = serde_json::from_str(&text).ok().filter(|v: &Value| {
        v.is_object() && v["energy_sources"].is_array()
    }).with_context(|| {
        format!(
            "{} is not a file of Energy preferences saved by `pwsync energy-dashboard` (a JSON object with energy_sources): pass the file its run named",
            file.display()
        )
    })?;
    Ok(DashboardPlan {
        shape: dashboard::grid_shape(&saved, version),
        before: before.clone(),
        after: saved,
        added: Vec::new(),
        present: Vec::new(),
        replaced: Vec::new(),
        blocked: Vec::new(),
        power: Vec::new(),
        power_kept: Vec::new(),
    })
}

/// The top-level keys whose value changes: HA's `save_prefs` replaces exactly those.
fn changed_keys(plan: &DashboardPlan) -> Map<String, Value> {
    let empty = Map::new();
    let after = plan.after.as_object().unwrap_or(&empty);
    after
        .iter()
        .filter(|(k, v)| plan.before.get(k.as_str()) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn default_backup(config: Option<&Path>) -> PathBuf {
    let dir = config
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    dir.join(dashboard::backup_file_name(chrono::Utc::now()))
}

fn write_backup(file: &Path, prefs: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(prefs)?;
    std::fs::write(file, text + "\n").with_context(|| {
        format!(
            "cannot save the current Energy preferences to {} (nothing was changed): choose a writable file with --backup",
            file.display()
        )
    })
}

fn print(plan: &DashboardPlan, args: &EnergyDashboardArgs, cfg: &Config, backup: Option<&Path>) {
    for slot in &plan.present {
        println!("{}: already {}", slot.label(), slot.meter(&cfg.site));
    }
    for slot in &plan.added {
        println!("{}: add {}", slot.label(), slot.meter(&cfg.site));
    }
    for o in &plan.replaced {
        println!(
            "{}: replace {} with {}",
            o.slot.label(),
            o.describe(),
            o.slot.meter(&cfg.site)
        );
    }
    for sensor in &plan.power {
        println!("power flow: add {sensor}");
    }
    for kept in &plan.power_kept {
        println!(
            "power flow: keep {kept} (yours; --replace power puts pwsync's power sensor there)"
        );
    }
    if args.restore.is_none() {
        println!("home usage: no slot in HA's Energy preferences (HA derives it from the flows)");
    }
    if !plan.changed() {
        println!("The Energy preferences already say this: nothing to change.");
        return;
    }
    println!("Energy preferences, before (-) and after (+):");
    print!("{}", dashboard::diff(&plan.before, &plan.after));
    match backup {
        Some(file) => println!(
            "Saved in HA. The preferences before are in {}: undo with `pwsync energy-dashboard --restore {}`",
            file.display(),
            file.display()
        ),
        None => println!("Dry run: nothing written."),
    }
}
