//! HA's Energy dashboard preferences (`energy/get_prefs`) with pwsync's lifetime meters in them.
//!
//! Pure: preferences, the entity registry and HA's version in, a plan (the preferences after,
//! what moved, what blocks) out. Everything in the preferences that is not one of pwsync's five
//! slots stays as it is, down to keys this code does not know.
//!
//! Two shapes of the grid source exist: up to HA 2026.2 one `grid` source holds `flow_from` and
//! `flow_to` lists (each entry with its own cost fields); from HA 2026.3 (storage 1.3) each grid
//! connection is its own `grid` source with `stat_energy_from`/`stat_energy_to` and the cost
//! fields flat on it. Home usage has no slot in either: HA derives it from the other flows.

use crate::migrate::{Platform, RegistryEntity};
use pwsync_energy::Field;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::str::FromStr;

/// A place in the preferences that one of pwsync's meters fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    GridImport,
    GridExport,
    Solar,
    BatteryDischarge,
    BatteryCharge,
}

impl Slot {
    pub const ALL: [Slot; 5] = [
        Slot::GridImport,
        Slot::GridExport,
        Slot::Solar,
        Slot::BatteryDischarge,
        Slot::BatteryCharge,
    ];

    pub fn field(self) -> Field {
        match self {
            Slot::GridImport => Field::FromGrid,
            Slot::GridExport => Field::ToGrid,
            Slot::Solar => Field::Solar,
            Slot::BatteryDischarge => Field::FromPw,
            Slot::BatteryCharge => Field::ToPw,
        }
    }

    /// The name HA's Energy settings give the slot.
    pub fn label(self) -> &'static str {
        match self {
            Slot::GridImport => "grid consumption",
            Slot::GridExport => "return to grid",
            Slot::Solar => "solar production",
            Slot::BatteryDischarge => "energy out of the battery",
            Slot::BatteryCharge => "energy into the battery",
        }
    }

    /// The slot's name in `--replace` and the panel's forms.
    pub fn name(self) -> &'static str {
        match self {
            Slot::GridImport => "grid_import",
            Slot::GridExport => "grid_export",
            Slot::Solar => "solar",
            Slot::BatteryDischarge => "battery_discharge",
            Slot::BatteryCharge => "battery_charge",
        }
    }

    /// pwsync's lifetime meter for the slot.
    pub fn meter(self, site: &str) -> String {
        format!("sensor.{site}_{}", self.field().sensor_key())
    }

    /// The key of the statistic in a source of the slot's type.
    fn key(self) -> &'static str {
        match self {
            Slot::GridImport | Slot::Solar | Slot::BatteryDischarge => "stat_energy_from",
            Slot::GridExport | Slot::BatteryCharge => "stat_energy_to",
        }
    }

    fn source_type(self) -> &'static str {
        match self {
            Slot::GridImport | Slot::GridExport => "grid",
            Slot::Solar => "solar",
            Slot::BatteryDischarge | Slot::BatteryCharge => "battery",
        }
    }
}

/// Which rivals pwsync's meters may take the place of: per slot, and the power sensors the
/// user chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replace {
    pub slots: Vec<Slot>,
    pub power: bool,
}

/// The name `--replace` gives the power sensors a user chose.
pub const REPLACE_POWER: &str = "power";

impl Replace {
    /// Every rival, and every power sensor (`--replace` alone).
    pub fn all() -> Replace {
        Replace {
            slots: Slot::ALL.to_vec(),
            power: true,
        }
    }

    /// None: rivals block the plan.
    pub fn none() -> Replace {
        Replace::default()
    }

    /// From names ([`Slot::name`], or [`REPLACE_POWER`]); a one-line error naming the valid
    /// ones for any other.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Replace, String> {
        let mut r = Replace::none();
        for n in names {
            let n = n.as_ref().trim();
            match Slot::ALL.into_iter().find(|s| s.name() == n) {
                Some(slot) if !r.slots.contains(&slot) => r.slots.push(slot),
                Some(_) => {}
                None if n == REPLACE_POWER => r.power = true,
                None => {
                    let valid: Vec<&str> = Slot::ALL.iter().map(|s| s.name()).collect();
                    return Err(format!(
                        "--replace {n}: not a place pwsync's meters go; name some of {}, {REPLACE_POWER}, or give --replace alone for all",
                        valid.join(", ")
                    ));
                }
            }
        }
        Ok(r)
    }

    fn slot(&self, slot: Slot) -> bool {
        self.slots.contains(&slot)
    }
}

/// How `energy-dashboard` names the preferences it saves before writing.
pub const BACKUP_PREFIX: &str = "energy-prefs-";

/// The file name of preferences saved at `now` (UTC, to the second).
pub fn backup_file_name(now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{BACKUP_PREFIX}{}.json", now.format("%Y%m%dT%H%M%SZ"))
}

/// How the connected HA keeps the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GridShape {
    /// One grid source with `flow_from`/`flow_to` lists (HA before 2026.3).
    Lists,
    /// One grid source per connection, meters flat on it (HA 2026.3 and later).
    Flat,
}

/// Whether HA `ha_version` is `at` (year, month) or later.
fn at_least(ha_version: &str, at: (u32, u32)) -> bool {
    let mut parts = ha_version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= at
}

/// Since HA 2025.12 the Energy dashboard shows power flows from a power sensor per source.
pub fn has_power(ha_version: &str) -> bool {
    at_least(ha_version, (2025, 12))
}

/// The shape the preferences already use, else the one HA `ha_version` expects.
pub fn grid_shape(prefs: &Value, ha_version: &str) -> GridShape {
    for s in sources_of(prefs).iter().filter(|s| s["type"] == "grid") {
        if s.get("flow_from").is_some() || s.get("flow_to").is_some() {
            return GridShape::Lists;
        }
        if s.get("stat_energy_from").is_some() || s.get("stat_energy_to").is_some() {
            return GridShape::Flat;
        }
    }
    if at_least(ha_version, (2026, 3)) {
        GridShape::Flat
    } else {
        GridShape::Lists
    }
}

/// The preferences HA starts from when it has none (`energy/get_prefs` answers "No prefs").
pub fn default_prefs() -> Value {
    json!({"energy_sources": [], "device_consumption": []})
}

/// Why a foreign statistic in one of pwsync's slots counts the same energy as pwsync's meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Rival {
    /// A meter of a Tesla integration (the registry's platform).
    Tesla(String),
    /// pwsync's own daily or monthly total: it resets, and lacks the backfilled history.
    PeriodTotal,
    /// Another meter on the grid connection the Powerwall's site meter measures whole.
    GridMeter,
}

/// A foreign statistic that fills one of pwsync's slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occupant {
    pub slot: Slot,
    pub statistic: String,
    pub rival: Rival,
}

impl Occupant {
    pub fn describe(&self) -> String {
        let what = match &self.rival {
            Rival::Tesla(p) => format!("{p} meter"),
            Rival::PeriodTotal => "pwsync period total".into(),
            Rival::GridMeter => "grid meter".into(),
        };
        format!("{} ({what}) in {}", self.statistic, self.slot.label())
    }
}

/// What `energy-dashboard` would do.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardPlan {
    pub shape: GridShape,
    pub before: Value,
    pub after: Value,
    /// Slots that get pwsync's meter where there was none.
    pub added: Vec<Slot>,
    /// Slots that already hold pwsync's meter.
    pub present: Vec<Slot>,
    /// Rivals taken out (`replace`): pwsync's meter took the first one's place, keeping its
    /// cost settings.
    pub replaced: Vec<Occupant>,
    /// Rivals in the way without `replace`: the plan must not be saved.
    pub blocked: Vec<Occupant>,
    /// Power sensors set as a source's `stat_rate` (HA 2025.12 and later).
    pub power: Vec<String>,
    /// Sources whose power sensor the user chose, left alone (without `replace`).
    pub power_kept: Vec<String>,
}

impl DashboardPlan {
    pub fn changed(&self) -> bool {
        self.before != self.after
    }

    /// The one-line refusal when rivals are in the way.
    pub fn refusal(&self) -> Option<String> {
        if self.blocked.is_empty() {
            return None;
        }
        let list: Vec<String> = self.blocked.iter().map(Occupant::describe).collect();
        Some(format!(
            "HA's Energy dashboard already counts this energy with {}: run again with --replace to put pwsync's meters in their place (preview with --dry-run --replace)",
            list.join(", ")
        ))
    }
}

/// A statistic's place in the preferences.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    slot: Slot,
    statistic: String,
    /// Index in `energy_sources`.
    source: usize,
    /// Index in `flow_from`/`flow_to` (list-shaped grid only).
    flow: Option<usize>,
}

fn sources_of(prefs: &Value) -> &[Value] {
    prefs["energy_sources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Every statistic in the five slots, in order.
fn entries(prefs: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, s) in sources_of(prefs).iter().enumerate() {
        for slot in Slot::ALL {
            if s["type"] != slot.source_type() {
                continue;
            }
            let list = match slot {
                Slot::GridImport => Some("flow_from"),
                Slot::GridExport => Some("flow_to"),
                _ => None,
            };
            if let Some(flows) = list.and_then(|l| s.get(l)).and_then(Value::as_array) {
                for (j, f) in flows.iter().enumerate() {
                    if let Some(id) = f[slot.key()].as_str() {
                        out.push(Entry {
                            slot,
                            statistic: id.to_string(),
                            source: i,
                            flow: Some(j),
                        });
                    }
                }
            } else if let Some(id) = s[slot.key()].as_str() {
                out.push(Entry {
                    slot,
                    statistic: id.to_string(),
                    source: i,
                    flow: None,
                });
            }
        }
    }
    out
}

/// Whether `statistic` in `slot` counts the energy pwsync's meter of the slot counts.
fn rival(slot: Slot, statistic: &str, site: &str, registry: &[RegistryEntity]) -> Option<Rival> {
    let own = slot.meter(site);
    if statistic == own {
        return None;
    }
    if let Some(p) = registry
        .iter()
        .find(|e| e.entity_id == statistic)
        .and_then(|e| Platform::from_str(&e.platform).ok())
    {
        return Some(Rival::Tesla(p.as_str().to_string()));
    }
    if period_total_of(statistic, site).is_some_and(|f| f == slot.field()) {
        return Some(Rival::PeriodTotal);
    }
    matches!(slot, Slot::GridImport | Slot::GridExport).then_some(Rival::GridMeter)
}

/// The field of one of pwsync's `_today`/`_this_month` totals.
fn period_total_of(statistic: &str, site: &str) -> Option<Field> {
    let key = statistic.strip_prefix(&format!("sensor.{site}_"))?;
    let key = key
        .strip_suffix("_today")
        .or_else(|| key.strip_suffix("_this_month"))?;
    Field::ALL.into_iter().find(|f| f.sensor_key() == key)
}

/// Whether `statistic` is a daily or monthly total (anyone's), by its entity id.
pub fn is_period_total(statistic: &str) -> bool {
    statistic.ends_with("_today") || statistic.ends_with("_this_month")
}

/// pwsync's meters merged into `prefs`. Rivals in a slot `replace` does not name block the
/// plan (`blocked`); in a slot it names, pwsync's meter takes the first rival's place and the
/// others go.
pub fn plan(
    prefs: &Value,
    site: &str,
    registry: &[RegistryEntity],
    ha_version: &str,
    replace: &Replace,
) -> DashboardPlan {
    let shape = grid_shape(prefs, ha_version);
    let mut after = prefs.clone();
    if !after["energy_sources"].is_array() {
        after["energy_sources"] = json!([]);
    }
    let found = entries(prefs);
    let mut plan = DashboardPlan {
        shape,
        before: prefs.clone(),
        after: Value::Null,
        added: Vec::new(),
        present: Vec::new(),
        replaced: Vec::new(),
        blocked: Vec::new(),
        power: Vec::new(),
        power_kept: Vec::new(),
    };
    // Edits by position first, removals after (back to front), so positions stay valid.
    let mut remove: Vec<(usize, Option<usize>, Slot)> = Vec::new();
    let mut missing: Vec<Slot> = Vec::new();
    for slot in Slot::ALL {
        let own = slot.meter(site);
        let here: Vec<&Entry> = found.iter().filter(|e| e.slot == slot).collect();
        let rivals: Vec<(&Entry, Rival)> = here
            .iter()
            .filter_map(|e| rival(slot, &e.statistic, site, registry).map(|r| (*e, r)))
            .collect();
        let has_own = here.iter().any(|e| e.statistic == own);
        if !rivals.is_empty() && !replace.slot(slot) {
            plan.blocked.extend(rivals.iter().map(|(e, r)| Occupant {
                slot,
                statistic: e.statistic.clone(),
                rival: r.clone(),
            }));
            continue;
        }
        for (k, (e, r)) in rivals.iter().enumerate() {
            plan.replaced.push(Occupant {
                slot,
                statistic: e.statistic.clone(),
                rival: r.clone(),
            });
            if k == 0 && !has_own {
                set_statistic(&mut after, e, &own);
            } else {
                remove.push((e.source, e.flow, slot));
            }
        }
        if has_own {
            plan.present.push(slot);
        } else if rivals.is_empty() {
            missing.push(slot);
        }
    }
    if !plan.blocked.is_empty() {
        plan.after = prefs.clone();
        return plan;
    }
    remove_entries(&mut after, remove);
    add_missing(&mut after, &missing, site, shape);
    if has_power(ha_version) {
        add_power(&mut after, site, shape, replace.power, &mut plan);
    }
    plan.added = missing;
    plan.after = after;
    plan
}

/// The power sensor (signed as HA reads it: grid positive = import, battery positive =
/// discharge) of each source that holds pwsync's meters. A power sensor the user chose stays
/// unless `replace`.
fn add_power(
    prefs: &mut Value,
    site: &str,
    shape: GridShape,
    replace: bool,
    plan: &mut DashboardPlan,
) {
    let power = |key: &str| format!("sensor.{site}_{key}");
    let Some(sources) = prefs["energy_sources"].as_array_mut() else {
        return;
    };
    for source in sources.iter_mut() {
        let (key, holds_ours) = match source["type"].as_str() {
            Some("solar") => (
                "solar_power",
                source["stat_energy_from"] == json!(Slot::Solar.meter(site)),
            ),
            Some("battery") => (
                "battery_power",
                source["stat_energy_from"] == json!(Slot::BatteryDischarge.meter(site)),
            ),
            Some("grid") if shape == GridShape::Flat => (
                "grid_power",
                source["stat_energy_from"] == json!(Slot::GridImport.meter(site))
                    || source["stat_energy_to"] == json!(Slot::GridExport.meter(site)),
            ),
            // Before 2026.3 a grid's power sensors are a `power` list beside its flows.
            Some("grid") => ("grid_power", entries_hold(source, site)),
            _ => continue,
        };
        if !holds_ours {
            continue;
        }
        let ours = power(key);
        let theirs = current_power(source, shape);
        match theirs {
            Some(t) if t == ours => {}
            Some(t) if !replace => plan
                .power_kept
                .push(format!("{t} in {}", source["type"].as_str().unwrap_or("?"))),
            _ => {
                set_power(source, shape, &ours);
                plan.power.push(ours);
            }
        }
    }
}

/// A list-shaped grid that holds one of pwsync's grid meters.
fn entries_hold(grid: &Value, site: &str) -> bool {
    let has = |list: &str, slot: Slot| {
        grid[list]
            .as_array()
            .is_some_and(|l| l.iter().any(|f| f[slot.key()] == json!(slot.meter(site))))
    };
    has("flow_from", Slot::GridImport) || has("flow_to", Slot::GridExport)
}

/// The power sensor a source has now: `stat_rate`, a `power_config`, or (list-shaped grid) the
/// first of its `power` list.
fn current_power(source: &Value, shape: GridShape) -> Option<String> {
    let of = |v: &Value| -> Option<String> {
        if let Some(r) = v["stat_rate"].as_str() {
            return Some(r.to_string());
        }
        v.get("power_config")
            .filter(|c| c.is_object())
            .map(|c| c.to_string())
    };
    if source["type"] == "grid" && shape == GridShape::Lists {
        return source["power"]
            .as_array()
            .and_then(|l| l.first())
            .and_then(of);
    }
    of(source)
}

fn set_power(source: &mut Value, shape: GridShape, sensor: &str) {
    if source["type"] == "grid" && shape == GridShape::Lists {
        source["power"] = json!([{ "stat_rate": sensor }]);
        return;
    }
    // HA takes a power_config over stat_rate: ours replaces it.
    if let Some(o) = source.as_object_mut() {
        o.remove("power_config");
    }
    source["stat_rate"] = json!(sensor);
}

fn set_statistic(prefs: &mut Value, e: &Entry, id: &str) {
    let source = &mut prefs["energy_sources"][e.source];
    let target = match (e.flow, e.slot) {
        (Some(j), Slot::GridImport) => &mut source["flow_from"][j],
        (Some(j), _) => &mut source["flow_to"][j],
        (None, _) => source,
    };
    target[e.slot.key()] = json!(id);
}

/// Take rivals out: a list entry goes; a flat grid meter is emptied with its cost fields (and
/// the connection goes once it measures nothing); a solar or battery source goes whole.
fn remove_entries(prefs: &mut Value, mut remove: Vec<(usize, Option<usize>, Slot)>) {
    remove.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));
    let mut drop_sources: Vec<usize> = Vec::new();
    for (i, flow, slot) in remove {
        let source = &mut prefs["energy_sources"][i];
        match (flow, slot) {
            (Some(j), Slot::GridImport) => remove_at(&mut source["flow_from"], j),
            (Some(j), _) => remove_at(&mut source["flow_to"], j),
            (None, Slot::GridImport | Slot::GridExport) => {
                let keys: &[&str] = if slot == Slot::GridImport {
                    &[
                        "stat_energy_from",
                        "stat_cost",
                        "entity_energy_price",
                        "number_energy_price",
                    ]
                } else {
                    &[
                        "stat_energy_to",
                        "stat_compensation",
                        "entity_energy_price_export",
                        "number_energy_price_export",
                    ]
                };
                for k in keys {
                    if source.get(*k).is_some() {
                        source[*k] = Value::Null;
                    }
                }
                let measures = ["stat_energy_from", "stat_energy_to", "stat_rate"]
                    .iter()
                    .any(|k| source[*k].is_string())
                    || source.get("power_config").is_some();
                if !measures {
                    drop_sources.push(i);
                }
            }
            (None, _) => drop_sources.push(i),
        }
    }
    drop_sources.sort_unstable();
    drop_sources.dedup();
    for i in drop_sources.into_iter().rev() {
        remove_at(&mut prefs["energy_sources"], i);
    }
}

fn remove_at(list: &mut Value, i: usize) {
    if let Some(a) = list.as_array_mut() {
        if i < a.len() {
            a.remove(i);
        }
    }
}

fn add_missing(prefs: &mut Value, missing: &[Slot], site: &str, shape: GridShape) {
    let sources = prefs["energy_sources"]
        .as_array_mut()
        .expect("energy_sources is a list");
    for slot in missing {
        let id = slot.meter(site);
        match (slot, shape) {
            (Slot::GridImport | Slot::GridExport, GridShape::Lists) => {
                let grid = match sources.iter().position(|s| s["type"] == "grid") {
                    Some(i) => &mut sources[i],
                    None => {
                        sources.push(json!({
                            "type": "grid", "flow_from": [], "flow_to": [], "cost_adjustment_day": 0.0
                        }));
                        sources.last_mut().expect("just pushed")
                    }
                };
                // HA's own dialog writes the cost fields as nulls; its validator reads them.
                let (list, entry) = if *slot == Slot::GridImport {
                    (
                        "flow_from",
                        json!({"stat_energy_from": id, "stat_cost": null,
                               "entity_energy_price": null, "number_energy_price": null}),
                    )
                } else {
                    (
                        "flow_to",
                        json!({"stat_energy_to": id, "stat_compensation": null,
                               "entity_energy_price": null, "number_energy_price": null}),
                    )
                };
                if !grid[list].is_array() {
                    grid[list] = json!([]);
                }
                grid[list].as_array_mut().expect("a list").push(entry);
            }
            (Slot::GridImport | Slot::GridExport, GridShape::Flat) => {
                // pwsync's connection: the one holding its other grid meter, else a free place
                // on a connection, else a new one.
                let other = if *slot == Slot::GridImport {
                    Slot::GridExport
                } else {
                    Slot::GridImport
                };
                let pos = sources
                    .iter()
                    .position(|s| s["type"] == "grid" && s[other.key()] == json!(other.meter(site)))
                    .or_else(|| {
                        sources
                            .iter()
                            .position(|s| s["type"] == "grid" && !s[slot.key()].is_string())
                    });
                match pos {
                    Some(i) => sources[i][slot.key()] = json!(id),
                    None => {
                        let mut s = Map::new();
                        s.insert("type".into(), json!("grid"));
                        s.insert(slot.key().into(), json!(id));
                        s.insert("cost_adjustment_day".into(), json!(0.0));
                        sources.push(Value::Object(s));
                    }
                }
            }
            (Slot::Solar, _) => sources.push(json!({
                "type": "solar", "stat_energy_from": id, "config_entry_solar_forecast": null
            })),
            (Slot::BatteryDischarge | Slot::BatteryCharge, _) => {
                // One battery source carries both meters.
                let pos = sources.iter().position(|s| {
                    s["type"] == "battery"
                        && (s["stat_energy_from"] == json!(Slot::BatteryDischarge.meter(site))
                            || s["stat_energy_to"] == json!(Slot::BatteryCharge.meter(site)))
                });
                match pos {
                    Some(i) => sources[i][slot.key()] = json!(id),
                    None => sources.push(json!({
                        "type": "battery",
                        "stat_energy_from": Slot::BatteryDischarge.meter(site),
                        "stat_energy_to": Slot::BatteryCharge.meter(site),
                    })),
                }
            }
        }
    }
}

/// What the dashboard counts, for `doctor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DashboardAudit {
    /// Slots holding pwsync's meter.
    pub uses: Vec<Slot>,
    /// Slots without it.
    pub missing: Vec<Slot>,
    /// Double counting and period totals, one line each.
    pub problems: Vec<String>,
}

pub fn audit(prefs: &Value, site: &str, registry: &[RegistryEntity]) -> DashboardAudit {
    let found = entries(prefs);
    let mut a = DashboardAudit::default();
    for slot in Slot::ALL {
        let here: Vec<&Entry> = found.iter().filter(|e| e.slot == slot).collect();
        if here.iter().any(|e| e.statistic == slot.meter(site)) {
            a.uses.push(slot);
        } else {
            a.missing.push(slot);
        }
        // Several grid meters on one flow always add up; for solar and batteries only known
        // rivals of pwsync's meter do (other arrays and batteries are real).
        let counting: Vec<&str> = here
            .iter()
            .filter(|e| {
                e.statistic == slot.meter(site)
                    || matches!(slot, Slot::GridImport | Slot::GridExport)
                    || rival(slot, &e.statistic, site, registry).is_some()
            })
            .map(|e| e.statistic.as_str())
            .collect();
        if counting.len() > 1 {
            a.problems.push(format!(
                "{} is counted {} times ({}): the dashboard adds them up",
                slot.label(),
                counting.len(),
                counting.join(", ")
            ));
        }
    }
    let mut seen = Vec::new();
    for e in &found {
        if is_period_total(&e.statistic) && !seen.contains(&e.statistic) {
            seen.push(e.statistic.clone());
            a.problems.push(format!(
                "{} in {} is a daily or monthly total, not a lifetime meter: use {}",
                e.statistic,
                e.slot.label(),
                e.slot.meter(site)
            ));
        }
    }
    a
}

/// `before` → `after` as pretty JSON lines, `-`/`+` for changed lines with 3 lines of context.
pub fn diff(before: &Value, after: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let (a, b) = (pretty(before), pretty(after));
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // Longest common subsequence table; preferences are a few hundred lines at most.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', b[j]));
            j += 1;
        } else {
            ops.push(('-', a[i]));
            i += 1;
        }
    }
    const CONTEXT: usize = 3;
    let near_change = |k: usize| {
        let lo = k.saturating_sub(CONTEXT);
        let hi = (k + CONTEXT + 1).min(ops.len());
        ops[lo..hi].iter().any(|(c, _)| *c != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, line)) in ops.iter().enumerate() {
        if near_change(k) {
            if skipped {
                out.push_str("  …\n");
                skipped = false;
            }
            out.push_str(&format!("{c} {line}\n"));
        } else {
            skipped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "powerwall";

    fn tesla(id: &str) -> RegistryEntity {
        RegistryEntity {
            entity_id: id.into(),
            platform: "teslemetry".into(),
            unique_id: Some(format!("1-{id}")),
        }
    }

    fn foreign() -> Vec<Value> {
        vec![
            json!({"type": "gas", "stat_energy_from": "sensor.gas", "stat_cost": null,
                   "entity_energy_price": null, "number_energy_price": 1.2}),
            json!({"type": "water", "stat_energy_from": "sensor.water", "stat_cost": null,
                   "entity_energy_price": null, "number_energy_price": null}),
            json!({"type": "solar", "stat_energy_from": "sensor.garage_array",
                   "config_entry_solar_forecast": ["abc"]}),
        ]
    }

    fn prefs(sources: Vec<Value>) -> Value {
        json!({
            "energy_sources": sources,
            "device_consumption": [{"stat_consumption": "sensor.fridge", "name": "Fridge"}],
            "later_key": {"kept": true},
        })
    }

    fn grid_import(p: &Value) -> Vec<String> {
        entries(p)
            .into_iter()
            .filter(|e| e.slot == Slot::GridImport)
            .map(|e| e.statistic)
            .collect()
    }

    #[test]
    fn empty_preferences_get_all_five_meters_in_the_lists_shape() {
        let p = plan(&default_prefs(), SITE, &[], "2025.4.4", &Replace::none());
        assert_eq!(p.shape, GridShape::Lists);
        assert_eq!(p.added, Slot::ALL.to_vec());
        assert!(p.blocked.is_empty() && p.changed());
        let sources = p.after["energy_sources"].as_array().unwrap();
        assert_eq!(sources.len(), 3, "one grid, one solar, one battery source");
        let grid = &sources[0];
        assert_eq!(
            grid["flow_from"][0]["stat_energy_from"],
            "sensor.powerwall_grid_imported"
        );
        assert!(grid["flow_from"][0]["entity_energy_price"].is_null());
        assert_eq!(
            grid["flow_to"][0]["stat_energy_to"],
            "sensor.powerwall_grid_exported"
        );
        assert_eq!(
            sources[1]["stat_energy_from"],
            "sensor.powerwall_solar_generated"
        );
        assert_eq!(
            sources[2],
            json!({"type": "battery", "stat_energy_from": "sensor.powerwall_battery_discharged",
                   "stat_energy_to": "sensor.powerwall_battery_charged"})
        );
        // Nothing of home usage: HA has no slot for it.
        assert!(!p.after.to_string().contains("home_usage"));
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let first = plan(&prefs(foreign()), SITE, &[], "2025.4.4", &Replace::none());
        let second = plan(&first.after, SITE, &[], "2025.4.4", &Replace::none());
        assert!(!second.changed());
        assert_eq!(second.present, Slot::ALL.to_vec());
        assert!(second.added.is_empty());
    }

    #[test]
    fn foreign_sources_and_unknown_keys_stay() {
        let before = prefs(foreign());
        let p = plan(&before, SITE, &[], "2025.4.4", &Replace::none());
        let sources = p.after["energy_sources"].as_array().unwrap();
        for f in foreign() {
            assert!(sources.contains(&f), "{f} kept");
        }
        assert_eq!(p.after["device_consumption"], before["device_consumption"]);
        assert_eq!(p.after["later_key"], before["later_key"]);
        assert_eq!(sources.len(), 3 + 3);
    }

    #[test]
    fn replacing_one_slot_leaves_a_rival_in_another_blocking() {
        let grid = json!({"type": "grid",
            "flow_from": [{"stat_energy_from": "sensor.my_home_grid_imported"}],
            "flow_to": [{"stat_energy_to": "sensor.my_home_grid_exported"}]});
        let before = prefs(vec![grid]);
        let reg = [
            tesla("sensor.my_home_grid_imported"),
            tesla("sensor.my_home_grid_exported"),
        ];
        let only_import = Replace::from_names(&["grid_import"]).unwrap();
        let p = plan(&before, SITE, &reg, "2025.4.4", &only_import);
        let slots: Vec<Slot> = p.blocked.iter().map(|o| o.slot).collect();
        assert_eq!(slots, vec![Slot::GridExport], "export still blocks");
        assert_eq!(p.after, before, "nothing planned while blocked");
        let both = Replace::from_names(&["grid_import", "grid_export"]).unwrap();
        let p = plan(&before, SITE, &reg, "2025.4.4", &both);
        assert!(p.blocked.is_empty());
        assert_eq!(p.replaced.len(), 2);
    }

    #[test]
    fn replace_names_are_the_slots_and_power_and_nothing_else() {
        let r = Replace::from_names(&["solar", "power", "solar"]).unwrap();
        assert_eq!((r.slots, r.power), (vec![Slot::Solar], true));
        let e = Replace::from_names(&["grid"]).unwrap_err();
        assert!(e.contains("grid_import") && e.contains("power"), "{e}");
    }

    #[test]
    fn a_teslemetry_grid_meter_blocks_without_replace_and_gives_its_place_with_it() {
        let grid = json!({"type": "grid", "cost_adjustment_day": 0.5,
            "flow_from": [{"stat_energy_from": "sensor.my_home_grid_imported", "stat_cost": null,
                           "entity_energy_price": "sensor.tariff", "number_energy_price": null}],
            "flow_to": []});
        let before = prefs(vec![grid]);
        let reg = [tesla("sensor.my_home_grid_imported")];
        let p = plan(&before, SITE, &reg, "2025.4.4", &Replace::none());
        assert_eq!(p.after, before, "nothing planned while blocked");
        assert_eq!(
            p.blocked,
            vec![Occupant {
                slot: Slot::GridImport,
                statistic: "sensor.my_home_grid_imported".into(),
                rival: Rival::Tesla("teslemetry".into()),
            }]
        );
        let msg = p.refusal().unwrap();
        assert!(msg.contains("sensor.my_home_grid_imported (teslemetry meter) in grid consumption"));
        assert!(msg.contains("--replace") && !msg.contains('\n'));

        let p = plan(&before, SITE, &reg, "2025.4.4", &Replace::all());
        assert!(p.blocked.is_empty());
        assert_eq!(p.replaced.len(), 1);
        let g = &p.after["energy_sources"][0];
        assert_eq!(
            g["flow_from"],
            json!([{"stat_energy_from": "sensor.powerwall_grid_imported", "stat_cost": null,
                    "entity_energy_price": "sensor.tariff", "number_energy_price": null}]),
            "the tariff stays with the slot"
        );
        assert_eq!(g["cost_adjustment_day"], 0.5);
        assert_eq!(
            g["flow_to"][0]["stat_energy_to"],
            "sensor.powerwall_grid_exported"
        );
        assert!(p.added.contains(&Slot::GridExport) && !p.added.contains(&Slot::GridImport));
    }

    #[test]
    fn any_other_grid_meter_is_a_rival_but_another_solar_array_is_not() {
        let grid = json!({"type": "grid", "cost_adjustment_day": 0.0, "flow_to": [],
            "flow_from": [{"stat_energy_from": "sensor.p1_import", "stat_cost": null,
                           "entity_energy_price": null, "number_energy_price": null}]});
        let mut sources = foreign();
        sources.push(grid);
        let p = plan(&prefs(sources), SITE, &[], "2025.4.4", &Replace::none());
        assert_eq!(p.blocked.len(), 1);
        assert_eq!(p.blocked[0].rival, Rival::GridMeter);
        assert_eq!(p.blocked[0].statistic, "sensor.p1_import");
    }

    #[test]
    fn period_totals_and_surplus_rivals_go_with_replace() {
        let before = prefs(vec![
            json!({"type": "solar", "stat_energy_from": "sensor.powerwall_solar_generated_today"}),
            json!({"type": "solar", "stat_energy_from": "sensor.my_home_solar_generated"}),
            json!({"type": "solar", "stat_energy_from": "sensor.garage_array"}),
            json!({"type": "grid", "cost_adjustment_day": 0.0, "flow_to": [], "flow_from": [
                {"stat_energy_from": "sensor.t1", "stat_cost": null, "entity_energy_price": null, "number_energy_price": 0.3},
                {"stat_energy_from": "sensor.t2", "stat_cost": null, "entity_energy_price": null, "number_energy_price": 0.1}]}),
        ]);
        let reg = [tesla("sensor.my_home_solar_generated")];
        let blocked = plan(&before, SITE, &reg, "2025.4.4", &Replace::none());
        assert_eq!(blocked.blocked.len(), 4);
        let p = plan(&before, SITE, &reg, "2025.4.4", &Replace::all());
        let sources = p.after["energy_sources"].as_array().unwrap();
        let solar: Vec<&str> = sources
            .iter()
            .filter(|s| s["type"] == "solar")
            .map(|s| s["stat_energy_from"].as_str().unwrap())
            .collect();
        assert_eq!(
            solar,
            vec!["sensor.powerwall_solar_generated", "sensor.garage_array"]
        );
        assert_eq!(
            grid_import(&p.after),
            vec!["sensor.powerwall_grid_imported"]
        );
        assert_eq!(
            sources.iter().find(|s| s["type"] == "grid").unwrap()["flow_from"][0]
                ["number_energy_price"],
            0.3
        );
        let again = plan(&p.after, SITE, &reg, "2025.4.4", &Replace::none());
        assert!(!again.changed() && again.blocked.is_empty());
    }

    #[test]
    fn a_tesla_battery_is_replaced_as_one_source() {
        let before = prefs(vec![json!({"type": "battery",
            "stat_energy_from": "sensor.my_home_battery_discharged",
            "stat_energy_to": "sensor.my_home_battery_charged"})]);
        let reg = [
            tesla("sensor.my_home_battery_discharged"),
            tesla("sensor.my_home_battery_charged"),
        ];
        let p = plan(&before, SITE, &reg, "2025.4.4", &Replace::all());
        let batteries: Vec<&Value> = p.after["energy_sources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["type"] == "battery")
            .collect();
        assert_eq!(
            batteries,
            vec![&json!({"type": "battery",
                "stat_energy_from": "sensor.powerwall_battery_discharged",
                "stat_energy_to": "sensor.powerwall_battery_charged"})]
        );
    }

    #[test]
    fn flat_grid_of_ha_2026_3() {
        let p = plan(&default_prefs(), SITE, &[], "2026.3.0", &Replace::none());
        assert_eq!(p.shape, GridShape::Flat);
        let grid = &p.after["energy_sources"][0];
        assert_eq!(
            grid,
            &json!({"type": "grid", "stat_energy_from": "sensor.powerwall_grid_imported",
                    "stat_energy_to": "sensor.powerwall_grid_exported", "cost_adjustment_day": 0.0,
                    "stat_rate": "sensor.powerwall_grid_power"})
        );
        // A flat Teslemetry import on its own connection: replaced in place, export kept.
        let before = prefs(vec![json!({"type": "grid", "cost_adjustment_day": 0.0,
            "stat_energy_from": "sensor.my_home_grid_imported", "stat_cost": null,
            "entity_energy_price": null, "number_energy_price": 0.25,
            "stat_energy_to": null, "stat_compensation": null,
            "entity_energy_price_export": null, "number_energy_price_export": null,
            "stat_rate": "sensor.grid_power"})]);
        let reg = [tesla("sensor.my_home_grid_imported")];
        // The preferences' shape wins over the version.
        assert_eq!(grid_shape(&before, "2025.4.4"), GridShape::Flat);
        let p = plan(&before, SITE, &reg, "2026.3.1", &Replace::all());
        let g = &p.after["energy_sources"][0];
        assert_eq!(g["stat_energy_from"], "sensor.powerwall_grid_imported");
        assert_eq!(g["number_energy_price"], 0.25);
        assert_eq!(g["stat_energy_to"], "sensor.powerwall_grid_exported");
        // With --replace the connection's power sensor becomes pwsync's too.
        assert_eq!(g["stat_rate"], "sensor.powerwall_grid_power");
        assert_eq!(p.after["energy_sources"].as_array().unwrap().len(), 3);
    }

    fn power_of(p: &Value, kind: &str) -> Vec<Value> {
        p["energy_sources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["type"] == kind)
            .map(|s| {
                if kind == "grid" && s.get("power").is_some() {
                    s["power"].clone()
                } else {
                    s.get("stat_rate").cloned().unwrap_or(Value::Null)
                }
            })
            .collect()
    }

    #[test]
    fn power_sensors_join_pwsyncs_sources_from_2025_12_in_either_grid_shape() {
        // HA before 2025.12 has no power flows: not one power key.
        let old = plan(&prefs(foreign()), SITE, &[], "2025.11.3", &Replace::none());
        assert!(old.power.is_empty());
        assert!(
            !old.after.to_string().contains("stat_rate"),
            "{}",
            old.after
        );

        // 2026.11: flat grid connections; stat_rate on each of pwsync's sources, and only on
        // them (the garage array keeps none).
        let p = plan(&prefs(foreign()), SITE, &[], "2026.11.0", &Replace::none());
        assert_eq!(p.shape, GridShape::Flat);
        assert_eq!(
            power_of(&p.after, "grid"),
            [json!("sensor.powerwall_grid_power")]
        );
        assert_eq!(
            power_of(&p.after, "solar"),
            [Value::Null, json!("sensor.powerwall_solar_power")]
        );
        assert_eq!(
            power_of(&p.after, "battery"),
            [json!("sensor.powerwall_battery_power")]
        );
        assert_eq!(p.power.len(), 3);
        let again = plan(&p.after, SITE, &[], "2026.11.0", &Replace::none());
        assert!(!again.changed() && again.power.is_empty(), "idempotent");

        // 2025.12 to 2026.2: a list-shaped grid takes its power sensors as a `power` list.
        let p = plan(&prefs(foreign()), SITE, &[], "2026.1.2", &Replace::none());
        assert_eq!(p.shape, GridShape::Lists);
        assert_eq!(
            power_of(&p.after, "grid"),
            [json!([{"stat_rate": "sensor.powerwall_grid_power"}])]
        );
    }

    #[test]
    fn a_power_sensor_the_user_chose_stays_unless_replaced() {
        let mine = vec![
            json!({"type": "solar", "stat_energy_from": "sensor.powerwall_solar_generated",
                   "stat_rate": "sensor.inverter_power"}),
            json!({"type": "battery", "stat_energy_from": "sensor.powerwall_battery_discharged",
                   "stat_energy_to": "sensor.powerwall_battery_charged",
                   "power_config": {"stat_rate_inverted": "sensor.pw_power"}}),
        ];
        let p = plan(
            &prefs(mine.clone()),
            SITE,
            &[],
            "2026.11.0",
            &Replace::none(),
        );
        assert_eq!(
            power_of(&p.after, "solar"),
            [json!("sensor.inverter_power")]
        );
        let battery = &p.after["energy_sources"][1];
        assert!(battery.get("power_config").is_some() && battery.get("stat_rate").is_none());
        assert_eq!(p.power_kept.len(), 2, "{:?}", p.power_kept);

        let p = plan(&prefs(mine), SITE, &[], "2026.11.0", &Replace::all());
        assert_eq!(
            power_of(&p.after, "solar"),
            [json!("sensor.powerwall_solar_power")]
        );
        let battery = &p.after["energy_sources"][1];
        assert_eq!(battery["stat_rate"], "sensor.powerwall_battery_power");
        assert!(
            battery.get("power_config").is_none(),
            "HA would prefer power_config"
        );
    }

    #[test]
    fn audit_finds_double_counting_and_period_totals() {
        let a = audit(&default_prefs(), SITE, &[]);
        assert!(a.uses.is_empty() && a.problems.is_empty());
        assert_eq!(a.missing, Slot::ALL.to_vec());

        let done = plan(&prefs(foreign()), SITE, &[], "2025.4.4", &Replace::none()).after;
        let a = audit(&done, SITE, &[]);
        assert_eq!(a.uses, Slot::ALL.to_vec());
        assert!(a.problems.is_empty(), "{:?}", a.problems);

        let mut bad = done.clone();
        let sources = bad["energy_sources"].as_array_mut().unwrap();
        sources
            .push(json!({"type": "solar", "stat_energy_from": "sensor.my_home_solar_generated"}));
        sources.push(
            json!({"type": "solar", "stat_energy_from": "sensor.powerwall_home_usage_today"}),
        );
        let a = audit(&bad, SITE, &[tesla("sensor.my_home_solar_generated")]);
        assert_eq!(a.problems.len(), 2, "{:?}", a.problems);
        assert!(a.problems[0].starts_with("solar production is counted 2 times"));
        assert!(a.problems[1].contains("sensor.powerwall_home_usage_today"));
    }

    #[test]
    fn diff_marks_changed_lines_only() {
        let before = json!({"a": 1, "b": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "c": 3});
        let after = json!({"a": 1, "b": [1, 2, 3, 4, 5, 6, 7, 8, 9, 11], "c": 3});
        let d = diff(&before, &after);
        assert!(d.contains("-     10\n") && d.contains("+     11\n"), "{d}");
        assert!(d.starts_with("  …\n"), "{d}");
        assert!(!d.contains("\"a\""));
        assert_eq!(diff(&before, &before), "");
    }
}
