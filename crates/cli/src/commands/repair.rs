//! `pwsync repair`: fix what `check` finds by splicing InfluxDB's energy into the bad hours,
//! online (HA's websocket) or offline (the recorder database, HA stopped, one transaction).

use crate::output::table;
use anyhow::Result;
use pwsync_config::scope::{options, Scope};
use pwsync_config::target::Opened;
use pwsync_config::Config;
use pwsync_jobs::range::fmt_ts;
use pwsync_jobs::RepairReport;

#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    #[command(flatten)]
    pub scope: Scope,
    /// Report what would be written, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: RepairArgs, cfg: &Config) -> Result<()> {
    let source = pwsync_config::source::from_config(cfg)?;
    let target = Opened::open(&args.scope.target, cfg, args.dry_run).await?;
    let result = async {
        if !args.dry_run && !args.json {
            if let Some(note) = target.backup_note().await? {
                eprintln!("{note}");
            }
        }
        let opts = options(&args.scope, cfg, &target).await?;
        let (report, _) = pwsync_jobs::repair(&source, target.store(), &opts, args.dry_run).await?;
        Ok::<_, anyhow::Error>(report)
    }
    .await;
    target.close().await;
    let report = result?;
    pwsync_daemon::progress::emit_result(&serde_json::json!({ "rows": report.rows }));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, target.tz);
        if let Some(b) = target
            .backup_path()
            .filter(|_| report.rows > 0 && !args.dry_run)
        {
            println!(
                "Backup of the recorder database before writing: {}",
                b.display()
            );
        }
    }
    Ok(())
}

fn print_report(r: &RepairReport, tz: chrono_tz::Tz) {
    let c = &r.check;
    println!(
        "{} {} → {} ({}) through {}: {} problem(s) found",
        if r.dry_run {
            "Dry run, nothing written:"
        } else {
            "Repaired"
        },
        fmt_ts(c.start, tz),
        fmt_ts(c.end, tz),
        tz.name(),
        c.store,
        c.problems
    );
    if r.statistics.is_empty() {
        println!("Nothing to repair.");
        return;
    }
    let mut t = table(&["statistic", "hour (local)", "repair"]);
    for s in &r.statistics {
        for f in &s.fixes {
            t.add_row(vec![
                s.statistic_id.clone(),
                fmt_ts(f.hour, tz),
                f.fix.describe(),
            ]);
        }
    }
    println!("{t}");
    for s in &r.statistics {
        println!(
            "  {}: {} hourly row(s), {} shift(s), {} 5-minute row(s) {}",
            s.statistic_id,
            s.rows_written,
            s.shifts,
            s.short_term_rows,
            if r.dry_run {
                "would be written"
            } else {
                "written"
            }
        );
    }
}
