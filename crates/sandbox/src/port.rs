//! Loopback ports for servers we start, and who listens on them.
//!
//! A port is picked by binding port 0 and closing the socket; the server binds it later. The
//! kernel hands a closed port out again, to the next caller in this process (parallel tests)
//! as to any other: the registry makes sure this process never gives the same port to two
//! starts, and [`owns_listener`] tells a start whether the listener on its port is its own.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

/// Every port [`free_port`] handed out in this process; never released, so a stopped server's
/// port is not given to a new one while the old one may come back on it (a restart).
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out
/// before. Another process can still take it before our server binds it: a start checks that
/// its server owns the port ([`owns_listener`]) and retries on a bind failure.
pub fn free_port() -> u16 {
    let mut ports = handed_out().lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        if ports.insert(port) {
            return port;
        }
    }
}

/// Whether process `pid` holds a socket listening on TCP `port` (any local address), from
/// `/proc/net/tcp{,6}` and `/proc/<pid>/fd`. False when either cannot be read.
pub fn owns_listener(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|target| {
                let t = target.to_string_lossy().into_owned();
                t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .is_some_and(|inode: u64| inodes.contains(&inode))
    })
}

/// Inodes of the sockets in state LISTEN on `port`.
fn listening_inodes(port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let port_hex = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
                    (local.ends_with(&port_hex) && *state == LISTEN)
                        .then(|| inode.parse().ok())
                        .flatten()
                })
                .collect::<Vec<u64>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn free_port_never_hands_out_a_port_twice_even_to_parallel_callers() {
        let threads: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| (0..300).map(|_| free_port()).collect::<Vec<_>>()))
            .collect();
        let ports: Vec<u16> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
    }

    #[test]
    fn a_listener_is_owned_only_by_the_process_that_holds_it() {
        let ours = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = ours.local_addr().unwrap().port();
        let me = std::process::id();
        assert!(owns_listener(me, port));
        let mut other = Command::new("sleep").arg("30").spawn().unwrap();
        let other_owns = owns_listener(other.id(), port);
        other.kill().unwrap();
        other.wait().unwrap();
        assert!(!other_owns, "sleep holds no socket");
        drop(ours);
        assert!(!owns_listener(me, port), "closed");
    }
}
