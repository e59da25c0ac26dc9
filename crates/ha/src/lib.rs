//! Home Assistant's websocket API for pwsync.
//!
//! - [`HaClient`]: one authenticated websocket (`auth_required` → `auth` → `auth_ok`), commands
//!   numbered with strictly increasing ids by a background task, replies matched by id, errors
//!   mapped to [`HaError`] (one line each), a new connection on the next request after one is
//!   lost. Typed helpers for the commands pwsync uses.
//! - [`WsStore`]: [`pwsync_store::StatisticsStore`] over that client, for HA while it runs:
//!   reads through `recorder/statistics_during_period` (in kWh), writes through
//!   `recorder/adjust_sum_statistics` and `recorder/import_statistics`, confirmed by reading
//!   back (HA only queues writes).
//! - [`metadata`]: the import metadata each HA version takes (`has_mean` before 2025.11,
//!   `mean_type` + `unit_class` from then on).
//!
//! Only `ws://` is supported today; the URL handling already maps `https://` to `wss://`, so TLS
//! is a matter of enabling tokio-tungstenite's TLS feature.

pub mod client;
pub mod error;
pub mod metadata;
pub mod store;
pub mod types;

pub use client::{websocket_url, ClientOptions, HaClient};
pub use error::HaError;
pub use metadata::{import_metadata, is_tested, metadata_shape, MetadataShape, TESTED_VERSIONS};
pub use store::{ApplyReport, WsStore, WsStoreOptions};
pub use types::{
    EntityState, HaConfig, Period, RegistryEntry, StatType, StatValue, StatisticInfo, StatisticKind,
};
