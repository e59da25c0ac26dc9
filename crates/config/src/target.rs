//! Where a write job goes: HA's websocket (HA running) or the recorder database (HA stopped),
//! and which time zone its local days are in. Shared by every command that writes statistics.

use crate::Config;
use anyhow::{bail, Context, Result};
use chrono_tz::Tz;
use clap::ValueEnum;
use pwsync_ha::{ClientOptions, HaClient, WsStore};
use pwsync_recorder::{RecorderDb, RecorderOptions};
use pwsync_store::StatisticsStore;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// HA's websocket API (HA running).
    Ws,
    /// The recorder database directly (HA stopped).
    Db,
}

#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// Where to write: HA's websocket (HA running) or its recorder database (HA stopped).
    #[arg(long, value_enum, default_value_t = Target::Ws)]
    pub target: Target,
    /// Recorder database URL for --target db (default: homeassistant.recorder_db).
    #[arg(long)]
    pub db: Option<String>,
    /// Write although the recorder's last run did not end cleanly (HA crashed, nothing uses the DB).
    #[arg(long)]
    pub allow_unclean_shutdown: bool,
}

/// An open statistics store and the zone local dates are read in.
pub struct Opened {
    pub kind: OpenedKind,
    pub tz: Tz,
    /// Where the zone came from, for the report ("HA", "HA's .storage", "configuration").
    pub tz_source: &'static str,
}

pub enum OpenedKind {
    Ws(WsStore),
    Db(RecorderDb),
}

impl Opened {
    /// Connect to the target. `dry_run` opens a recorder database read-only.
    pub async fn open(args: &TargetArgs, cfg: &Config, dry_run: bool) -> Result<Opened> {
        match args.target {
            Target::Ws => open_ws(cfg).await,
            Target::Db => open_db(args, cfg, dry_run).await,
        }
    }

    pub fn store(&self) -> &dyn StatisticsStore {
        match &self.kind {
            OpenedKind::Ws(s) => s,
            OpenedKind::Db(d) => d,
        }
    }

    /// The websocket client, when writing through HA.
    pub fn ha(&self) -> Option<&HaClient> {
        match &self.kind {
            OpenedKind::Ws(s) => Some(s.client()),
            OpenedKind::Db(_) => None,
        }
    }

    /// What will be backed up before the first write (recorder database only), once the
    /// refusals (HA running, unclean shutdown, read-only) have passed: a refused run never
    /// announces a backup it will not make.
    pub async fn backup_note(&self) -> Result<Option<String>> {
        match &self.kind {
            OpenedKind::Db(d) => {
                d.check_writable().await?;
                Ok(Some(d.backup_note()))
            }
            OpenedKind::Ws(_) => Ok(None),
        }
    }

    /// The recorder database file, for SQLite.
    pub fn sqlite_file(&self) -> Option<&Path> {
        match &self.kind {
            OpenedKind::Db(d) => d.sqlite_file(),
            OpenedKind::Ws(_) => None,
        }
    }

    pub fn backup_path(&self) -> Option<PathBuf> {
        match &self.kind {
            OpenedKind::Db(d) => d.backup_path(),
            OpenedKind::Ws(_) => None,
        }
    }

    pub async fn close(&self) {
        if let OpenedKind::Db(d) = &self.kind {
            d.close().await;
        }
    }
}

/// A websocket client from `[homeassistant]`, with a message that says which key is missing.
pub fn ha_client(cfg: &Config) -> Result<HaClient> {
    let url = cfg.homeassistant.url.as_deref().context(
        "HA's URL is not configured: set homeassistant.url (or PWSYNC_HOMEASSISTANT__URL), or stop HA and use --target db",
    )?;
    if cfg.homeassistant.token.is_empty() {
        bail!(
            "HA's access token is not configured: create a long-lived token in your HA profile and set homeassistant.token or homeassistant.token_file"
        );
    }
    Ok(HaClient::new(ClientOptions::new(
        url,
        cfg.homeassistant.token.expose(),
    )))
}

async fn open_ws(cfg: &Config) -> Result<Opened> {
    let client = ha_client(cfg)?;
    let ha = client.get_config().await?;
    let tz: Tz = ha.time_zone.parse().map_err(|_| {
        anyhow::anyhow!(
            "HA reports the time zone '{}', which pwsync does not know: set a standard IANA zone in HA's settings",
            ha.time_zone
        )
    })?;
    tracing::info!(version = %ha.version, zone = %ha.time_zone, "connected to HA");
    Ok(Opened {
        kind: OpenedKind::Ws(WsStore::new(client)),
        tz,
        tz_source: "HA",
    })
}

async fn open_db(args: &TargetArgs, cfg: &Config, dry_run: bool) -> Result<Opened> {
    let url = args
        .db
        .clone()
        .or_else(|| {
            cfg.homeassistant
                .recorder_db
                .as_ref()
                .map(|s| s.expose().to_string())
        })
        .context(
            "--target db needs a recorder database: pass --db URL or set homeassistant.recorder_db",
        )?;
    let db = RecorderDb::open_with(
        &url,
        RecorderOptions {
            read_only: dry_run,
            allow_unclean_shutdown: args.allow_unclean_shutdown,
        },
    )
    .await?;
    let (tz, tz_source) = match db.sqlite_file().and_then(zone_beside) {
        Some(tz) => (tz, "HA's .storage/core.config"),
        None => (cfg.tz()?, "configuration"),
    };
    Ok(Opened {
        kind: OpenedKind::Db(db),
        tz,
        tz_source,
    })
}

/// HA's zone with HA stopped, from its config directory beside the default SQLite recorder
/// file: `time_zone:` in `configuration.yaml` (which wins in HA), else `.storage/core.config`
/// (where the UI keeps it).
fn zone_beside(db_file: &Path) -> Option<Tz> {
    let dir = db_file.parent()?;
    zone_in_yaml(&dir.join("configuration.yaml")).or_else(|| {
        let text = std::fs::read_to_string(dir.join(".storage").join("core.config")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v.pointer("/data/time_zone")?.as_str()?.parse().ok()
    })
}

/// An indented `time_zone: Zone/Name` line (under `homeassistant:`); `!secret` and the like are
/// not zones and are ignored.
fn zone_in_yaml(file: &Path) -> Option<Tz> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(|c: char| c.is_whitespace())?.trim_start();
        let value = rest.strip_prefix("time_zone:")?.trim();
        value.trim_matches(|c| c == '"' || c == '\'').parse().ok()
    })
}

/// HA's entity registry entry as the migration's discovery reads it.
pub fn registry_entity(e: pwsync_ha::RegistryEntry) -> pwsync_jobs::migrate::RegistryEntity {
    pwsync_jobs::migrate::RegistryEntity {
        entity_id: e.entity_id,
        platform: e.platform,
        unique_id: e.unique_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_is_read_from_core_config_beside_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("home-assistant_v2.db");
        assert_eq!(zone_beside(&db), None, "no .storage yet");
        std::fs::create_dir(dir.path().join(".storage")).unwrap();
        std::fs::write(
            dir.path().join(".storage/core.config"),
            r#"{"version":1,"minor_version":4,"key":"core.config","data":{"time_zone":"America/Denver"}}"#,
        )
        .unwrap();
        assert_eq!(zone_beside(&db), Some(chrono_tz::America::Denver));
        // configuration.yaml wins, as in HA.
        std::fs::write(
            dir.path().join("configuration.yaml"),
            "homeassistant:\n  name: Home\n  time_zone: \"Europe/Berlin\"\nrecorder:\n",
        )
        .unwrap();
        assert_eq!(zone_beside(&db), Some(chrono_tz::Europe::Berlin));
    }
}
