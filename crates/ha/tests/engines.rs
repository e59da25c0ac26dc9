//! WsStore behaves the same whatever database HA's recorder uses: HA on MariaDB and on
//! PostgreSQL (the harness installs HA's driver into the venv when missing).

mod common;

use common::{hours_ago, meter_rows};
use pwsync_energy::HOUR;
use pwsync_ha::{ClientOptions, HaClient, WsStore};
use pwsync_store::{Shift, StatMeta, StatWrite, StatisticsStore, Table, WritePlan};
use pwsync_testkit::ha::{self, HaInstance, HaOptions};
use pwsync_testkit::or_skip;
use pwsync_testkit::sqlservers::{MariaDbServer, PostgresServer};

async fn write_shift_and_read(db_url: String) {
    let mut instance = HaInstance::start(HaOptions {
        recorder_db_url: Some(db_url),
        ..HaOptions::default()
    })
    .unwrap();
    let store = WsStore::new(HaClient::new(ClientOptions::new(
        &instance.url(),
        instance.token(),
    )));
    let id = "sensor.pwsync_test_engine";
    let start = hours_ago(48);
    let rows = meter_rows(start, 24, 0.0, 100.0);
    let meta = StatMeta::energy_kwh(id, "Engine");
    store
        .apply(&WritePlan {
            writes: vec![StatWrite {
                meta: meta.clone(),
                shifts: vec![],
                hourly: rows.clone(),
                short_term: vec![],
            }],
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .read(id, Table::Hourly, start, start + 24 * HOUR)
            .await
            .unwrap(),
        rows
    );
    // Rewrite hour 5 and keep the rest continuous: shift from hour 6 by the change.
    let mut h5 = rows[5];
    h5.sum = h5.sum.map(|s| s + 0.75);
    store
        .apply(&WritePlan {
            writes: vec![StatWrite {
                meta,
                shifts: vec![Shift {
                    from: start + 6 * HOUR,
                    delta: 0.75,
                }],
                hourly: vec![h5],
                short_term: vec![],
            }],
        })
        .await
        .unwrap();
    let back = store
        .read(id, Table::Hourly, start, start + 24 * HOUR)
        .await
        .unwrap();
    assert_eq!(&back[..5], &rows[..5]);
    assert_eq!(back[5], h5);
    for (b, r) in back[6..].iter().zip(&rows[6..]) {
        assert!(
            (b.sum.unwrap() - r.sum.unwrap() - 0.75).abs() < 1e-9,
            "{b:?} vs {r:?}"
        );
        assert_eq!(b.state, r.state);
    }
    instance.stop_async().await.unwrap();
}

#[tokio::test]
async fn on_mariadb() {
    let Some(_) = ha::venv_or_skip() else { return };
    let Some(_) = or_skip(MariaDbServer::available()) else {
        return;
    };
    let db = MariaDbServer::start().unwrap();
    write_shift_and_read(db.ha_db_url()).await;
}

#[tokio::test]
async fn on_postgresql() {
    let Some(_) = ha::venv_or_skip() else { return };
    let Some(_) = or_skip(PostgresServer::available()) else {
        return;
    };
    let db = PostgresServer::start().unwrap();
    write_shift_and_read(db.ha_db_url()).await;
}
