//! The harness under load: many servers started at once from parallel threads, as a parallel
//! test run does, each one answering as itself on its own ports. Ignored by default (it starts
//! 30 servers); `scripts/test.sh` runs it once:
//! `cargo test -p pwsync-testkit --test stress -- --ignored`.

use pwsync_testkit::influxd::{answers_ping, InfluxServer};
use pwsync_testkit::mosquitto::{answers_connack, Mosquitto};
use pwsync_testkit::or_skip;
use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Instant;

const INFLUXDS: usize = 20;
const BROKERS: usize = 10;

enum Server {
    Influx(InfluxServer),
    Broker(Mosquitto),
}

impl Server {
    fn port(&self) -> u16 {
        match self {
            Server::Influx(s) => s.port(),
            Server::Broker(s) => s.port(),
        }
    }

    fn answers(&self) -> bool {
        match self {
            Server::Influx(s) => answers_ping(s.port()),
            Server::Broker(s) => answers_connack(s.port()),
        }
    }
}

#[test]
#[ignore = "starts 30 servers at once; scripts/test.sh runs it with --ignored"]
fn twenty_influxdbs_and_ten_brokers_started_at_once_all_answer() {
    if or_skip(pwsync_testkit::require(
        "influxd",
        "apt-get install influxdb",
    ))
    .is_none()
        || or_skip(Mosquitto::available()).is_none()
    {
        return;
    }
    let gate = Arc::new(Barrier::new(INFLUXDS + BROKERS));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..INFLUXDS + BROKERS)
        .map(|i| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                if i < INFLUXDS {
                    InfluxServer::start().map(Server::Influx)
                } else {
                    Mosquitto::start().map(Server::Broker)
                }
            })
        })
        .collect();
    let servers: Vec<Server> = threads
        .into_iter()
        .map(|t| t.join().expect("start thread panicked"))
        .collect::<anyhow::Result<_>>()
        .unwrap_or_else(|e| panic!("a start failed: {e:#}"));
    let started = t0.elapsed();
    let ports: HashSet<u16> = servers.iter().map(Server::port).collect();
    assert_eq!(ports.len(), servers.len(), "two servers on one port");
    let silent: Vec<u16> = servers
        .iter()
        .filter(|s| !s.answers())
        .map(Server::port)
        .collect();
    assert!(silent.is_empty(), "no answer on ports {silent:?}");
    eprintln!(
        "{INFLUXDS} InfluxDB and {BROKERS} Mosquitto started at once in {:.1} s, all answer",
        started.as_secs_f64()
    );
}
