//! `pwsync backfill`: InfluxDB history into HA's long-term statistics of pwsync's meters.

use crate::commands::energy::NO_DATA;
use crate::output::table;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use pwsync_config::source::Source;
use pwsync_config::target::{Opened, TargetArgs};
use pwsync_config::Config;
use pwsync_energy::local::{parse_date, HourRange};
use pwsync_energy::{Field, HoleKept};
use pwsync_jobs::backfill::Step;
use pwsync_jobs::range::fmt_ts;
use pwsync_jobs::{backfill, BackfillOptions, BackfillReport, DateRange, RangeStart};
use std::io::IsTerminal;

#[derive(clap::Args, Debug)]
pub struct BackfillArgs {
    /// First local day, YYYY-MM-DD.
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    pub start: Option<String>,
    /// From the first InfluxDB point.
    #[arg(long)]
    pub all: bool,
    /// Last local day (included); default: up to the last hour HA has compiled.
    #[arg(long)]
    pub end: Option<String>,
    /// Replace hours that already exist (default: only fill missing hours).
    #[arg(long)]
    pub overwrite: bool,
    /// With --overwrite: keep existing hours that InfluxDB covers only partly (a gap, or the
    /// edge of its data), e.g. migrated ones.
    #[arg(long, requires = "overwrite")]
    pub keep_partial: bool,
    /// Compute and report everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only these fields (default: all six).
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<Field>,
    /// Only these local hours of each day, e.g. 17-21 (17:00 up to 21:00).
    #[arg(long)]
    pub hours: Option<HourRange>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: BackfillArgs, cfg: &Config) -> Result<()> {
    let fields = if args.fields.is_empty() {
        Field::ALL.to_vec()
    } else {
        args.fields.clone()
    };
    // The arguments before any connection: a mistyped date is named even with a server down.
    let range = date_range(&args)?;
    let source = pwsync_config::source::from_config(cfg)?;
    let target = Opened::open(&args.target, cfg, args.dry_run).await?;
    let result = match source.client.check_source(&source.map, &fields).await {
        Ok(()) => backfill_into(&args, cfg, &source, &target, fields, range).await,
        Err(e) => Err(e.into()),
    };
    target.close().await;
    let report = result?;
    pwsync_daemon::progress::emit_result(&serde_json::json!({ "rows": report.rows }));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, target.tz);
        if let Some(b) = target.backup_path() {
            println!(
                "Backup of the recorder database before writing: {}",
                b.display()
            );
        }
    }
    Ok(())
}

async fn backfill_into(
    args: &BackfillArgs,
    cfg: &Config,
    source: &Source,
    target: &Opened,
    fields: Vec<Field>,
    range: DateRange,
) -> Result<BackfillReport> {
    let opts = BackfillOptions {
        site: cfg.site.clone(),
        fields,
        range,
        overwrite: args.overwrite,
        keep_partial: args.keep_partial,
        dry_run: args.dry_run,
        hours: args.hours,
        tz: target.tz,
        now: chrono::Utc::now().timestamp(),
    };
    if !args.dry_run && !args.json {
        if let Some(note) = target.backup_note().await? {
            eprintln!("{note}");
        }
    }
    tracing::info!(zone = %target.tz.name(), from = target.tz_source, "local days");
    run_job(source, target.store(), &opts).await
}

fn date_range(args: &BackfillArgs) -> Result<DateRange> {
    Ok(DateRange {
        start: match &args.start {
            Some(s) => RangeStart::Date(parse_date(s)?),
            None => RangeStart::All,
        },
        end: args.end.as_deref().map(parse_date).transpose()?,
    })
}

/// The job with a progress spinner on a terminal.
pub async fn run_job(
    source: &Source,
    store: &dyn pwsync_store::StatisticsStore,
    opts: &BackfillOptions,
) -> Result<BackfillReport> {
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new_spinner();
        b.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"));
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    let mut steps = pwsync_daemon::progress::StepProgress::from_env();
    let mut progress = |s: Step| bar.set_message(steps.step(&s).1);
    let r = backfill(source, store, opts, &mut progress).await;
    bar.finish_and_clear();
    Ok(r?.0)
}

pub fn print_report(r: &BackfillReport, tz: chrono_tz::Tz) {
    let mut t = table(&[
        "statistic",
        "hours with data",
        "incomplete",
        "rows written",
        "kept",
        "unchanged",
        "kWh",
    ]);
    for f in &r.fields {
        t.add_row(vec![
            f.statistic_id.clone(),
            f.hours_with_data.to_string(),
            f.incomplete_hours.to_string(),
            f.rows_written.to_string(),
            f.kept_existing.to_string(),
            f.unchanged.to_string(),
            f.kwh.map_or(NO_DATA.into(), |k| format!("{k:.3}")),
        ]);
    }
    println!(
        "{} {} → {} ({}) into {}{}",
        if r.dry_run {
            "Dry run, nothing written:"
        } else {
            "Backfilled"
        },
        fmt_ts(r.start, tz),
        fmt_ts(r.end, tz),
        tz.name(),
        r.store,
        if r.keep_partial {
            ", overwriting existing hours but those InfluxDB covers only partly"
        } else if r.overwrite {
            ", overwriting existing hours"
        } else {
            ", keeping existing hours"
        },
    );
    println!("{t}");
    // What "incomplete" means (splice: a hole is filled only from hours InfluxDB covers whole).
    println!(
        "incomplete: hours InfluxDB covers only in part (a gap, or the edge of its data); a hole in HA's history is filled only from complete hours"
    );
    print_holes(r, tz);
    let gap_hours: i64 = r.gaps.iter().map(|g| g.seconds()).sum::<i64>() / 3600;
    println!(
        "{} rows, {} gaps (about {gap_hours} h without data, not invented), {:.1} s",
        r.rows,
        r.gaps.len(),
        r.seconds
    );
}

/// Each hole of HA's chain the range reached: filled with the row after it, or kept and why.
fn print_holes(r: &BackfillReport, tz: chrono_tz::Tz) {
    for f in &r.fields {
        for h in &f.holes {
            let hours = format!(
                "{} → {} ({} h without a row)",
                fmt_ts(h.start, tz),
                fmt_ts(h.row_after, tz),
                h.hours()
            );
            match h.kept {
                None => println!(
                    "{}: hole {hours} filled with {:.3} kWh; the row after it carried {:.3} kWh, now {:.3} kWh",
                    f.statistic_id, h.filled_kwh, h.carried_kwh, h.carries_kwh
                ),
                Some(why) => println!(
                    "{}: hole {hours} kept as HA has it, the row after it carrying {:.3} kWh: {} {}",
                    f.statistic_id,
                    h.carried_kwh,
                    match why {
                        HoleKept::NoData { .. } => "no InfluxDB energy (a gap, the edge of its data, or outside the range) for",
                        HoleKept::Partial { .. } => "InfluxDB covers only part of",
                    },
                    fmt_ts(why.hour(), tz)
                ),
            }
        }
    }
}
