//! The panel's HTTP server: the daemon's file descriptors are worth more than the panel.
//!
//! hyper's HTTP/1 connections with its header read timeout, which runs from the moment a
//! connection waits for a request (the first one, or the next one on a kept-alive
//! connection) until the request's last header byte: an idle connection, a kept-alive one
//! and a half-sent request all close after [`Limits::header_timeout`]. At most
//! [`Limits::max_connections`] are open at once, well below the process's file limit, so
//! InfluxDB, the broker and the heartbeat always find a descriptor. At that cap a new
//! connection takes the slot of the oldest one that has not yet sent a whole request (idle
//! sockets opened to starve the panel are the first to go); when every open connection is
//! serving a request, the new one is closed at once.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// The address a connection came in on (the panel's side of it), for the `Host` rules.
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub SocketAddr);

/// How much of the process the panel's connections may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// From waiting for a request to its last header byte.
    pub header_timeout: Duration,
}

impl Limits {
    /// A quarter of `open_files` (the soft `RLIMIT_NOFILE`), at most 256, at least 8.
    pub fn for_open_files(open_files: u64) -> Limits {
        Limits {
            max_connections: (open_files / 4).clamp(8, 256) as usize,
            header_timeout: Duration::from_secs(10),
        }
    }

    pub fn of_this_process() -> Limits {
        Limits::for_open_files(open_files_limit().0)
    }
}

/// The process's (soft, hard) `RLIMIT_NOFILE`.
pub fn open_files_limit() -> (u64, u64) {
    let (soft, hard) = rlimit_nofile().unwrap_or((1024, 1024));
    (widen(soft), widen(hard))
}

/// Raise the soft `RLIMIT_NOFILE` to the hard one (an unlimited hard one: to 65,536), as
/// systemd recommends for programs that need many descriptors. Returns the soft limit now.
pub fn raise_open_files() -> std::io::Result<u64> {
    let (soft, hard) = rlimit_nofile()?;
    let want = match hard {
        libc::RLIM_INFINITY => soft.max(65_536),
        _ => hard,
    };
    if want <= soft {
        return Ok(widen(soft));
    }
    let r = libc::rlimit {
        rlim_cur: want,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    match unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } {
        0 => Ok(widen(want)),
        _ => Err(std::io::Error::last_os_error()),
    }
}

fn rlimit_nofile() -> std::io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } {
        0 => Ok((r.rlim_cur, r.rlim_max)),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on 64-bit Linux, u32 on some 32-bit targets
fn widen(v: libc::rlim_t) -> u64 {
    v as u64
}

/// Serve `router` on `listener` with [`Limits::of_this_process`] until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, Limits::of_this_process(), shutdown).await
}

/// Serve `router` on `listener` within `limits` until `shutdown` resolves; then open
/// connections finish their request and close.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let waiting = Arc::new(Waiting::default());
    let (stop, stopped) = watch::channel(false);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    for id in 0u64.. {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        // Over the cap with every connection busy: `stream` is dropped, closed at once.
        let Some(slot) = take_slot(&slots, &waiting).await else {
            continue;
        };
        let conn = Conn {
            id,
            peer,
            evict: waiting.add(id),
            waiting: waiting.clone(),
            _slot: slot,
        };
        tokio::spawn(conn.run(http.clone(), stream, router.clone(), stopped.clone()));
    }
    let _ = stop.send(true);
    Ok(())
}

/// A free slot, or the slot of the oldest connection still waiting for its first request.
async fn take_slot(slots: &Arc<Semaphore>, waiting: &Waiting) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    if !waiting.evict_oldest() {
        return None;
    }
    // The evicted connection's task gives its slot back as soon as it runs.
    tokio::time::timeout(Duration::from_secs(1), slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// An error of `accept`: one connection's (reset before it was taken) is skipped; any other
/// (no descriptor left) waits a moment instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!("the web panel cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Connections that have not yet sent a whole request, oldest first, with the signal that
/// closes each.
#[derive(Default)]
struct Waiting(Mutex<BTreeMap<u64, Arc<Notify>>>);

impl Waiting {
    fn add(&self, id: u64) -> Arc<Notify> {
        let n = Arc::new(Notify::new());
        self.lock().insert(id, n.clone());
        n
    }

    /// `id` sent a request, or closed: it is no longer a candidate.
    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn evict_oldest(&self) -> bool {
        let oldest = self.lock().pop_first();
        oldest.map(|(_, n)| n.notify_one()).is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        // Nothing panics while holding it; a poisoned map is still a valid map.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One accepted connection and the slot it holds until it closes.
struct Conn {
    id: u64,
    peer: SocketAddr,
    evict: Arc<Notify>,
    waiting: Arc<Waiting>,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    async fn run(
        self,
        http: http1::Builder,
        stream: TcpStream,
        router: Router,
        mut stopped: watch::Receiver<bool>,
    ) {
        let Ok(local) = stream.local_addr() else {
            self.waiting.remove(self.id);
            return;
        };
        let (id, peer, waiting) = (self.id, self.peer, self.waiting.clone());
        let service = hyper::service::service_fn(move |mut req: axum::extract::Request<_>| {
            waiting.remove(id);
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(LocalAddr(local));
            router.clone().oneshot(req)
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            // Its slot is wanted by a newer connection: dropped, the socket closes.
            () = self.evict.notified() => {}
            () = async { let _ = stopped.wait_for(|stop| *stop).await; } => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
        self.waiting.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    #[test]
    fn the_cap_is_a_quarter_of_the_file_limit_at_most_256() {
        assert_eq!(Limits::for_open_files(1024).max_connections, 256);
        assert_eq!(Limits::for_open_files(1_048_576).max_connections, 256);
        assert_eq!(Limits::for_open_files(256).max_connections, 64);
        assert_eq!(Limits::for_open_files(u64::MAX).max_connections, 256);
        assert_eq!(Limits::for_open_files(0).max_connections, 8);
        let (soft, hard) = open_files_limit();
        assert!(soft > 0 && soft <= hard, "{soft} {hard}");
    }

    /// A server of one page on a free loopback port, within `limits`.
    async fn start(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/",
            axum::routing::get(
                |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                 axum::Extension(LocalAddr(local)): axum::Extension<LocalAddr>| async move {
                    format!("{peer} -> {local}")
                },
            ),
        );
        tokio::spawn(serve_with(listener, router, limits, std::future::pending()));
        addr
    }

    /// One GET on a new connection; the whole answer, or the error.
    fn get(addr: SocketAddr) -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// Whether the server closed `s` (EOF) within `limit`.
    fn closed_within(s: &mut std::net::TcpStream, limit: Duration) -> bool {
        s.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn idle_kept_alive_and_half_sent_connections_are_closed_after_the_header_timeout() {
        let limits = Limits {
            max_connections: 8,
            header_timeout: Duration::from_millis(700),
        };
        let addr = start(limits).await;
        tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let mut idle = std::net::TcpStream::connect(addr).unwrap();
            let mut half = std::net::TcpStream::connect(addr).unwrap();
            half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            let mut kept = std::net::TcpStream::connect(addr).unwrap();
            kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 512];
            let n = kept.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "kept-alive answered");
            for (what, s) in [
                ("idle", &mut idle),
                ("half-sent", &mut half),
                ("kept-alive", &mut kept),
            ] {
                assert!(
                    closed_within(s, Duration::from_secs(5)),
                    "{what} still open"
                );
            }
            let took = t0.elapsed();
            assert!(
                took >= Duration::from_millis(600) && took < Duration::from_secs(4),
                "closed after {took:?}"
            );
            // The one that sent nothing said nothing back.
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn at_the_cap_a_new_connection_takes_the_slot_of_the_oldest_idle_one() {
        let limits = Limits {
            max_connections: 4,
            header_timeout: Duration::from_secs(60),
        };
        let addr = start(limits).await;
        tokio::task::spawn_blocking(move || {
            // Twelve idle connections: three times the cap, none times out during the test.
            let mut idle: Vec<_> = (0..12)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            std::thread::sleep(Duration::from_millis(200));
            let t0 = Instant::now();
            let page = get(addr).unwrap();
            assert!(page.starts_with("HTTP/1.1 200"), "{page}");
            assert!(page.contains(&format!("-> {addr}")), "{page}");
            assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
            // The oldest were closed to make room; the newest still wait, within the cap.
            let closed = idle
                .iter_mut()
                .map(|s| closed_within(s, Duration::from_millis(300)))
                .filter(|&c| c)
                .count();
            // All but the cap, and one more for the page just served.
            assert!(closed > 12 - 4, "{closed} of 12 closed");
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn at_the_cap_with_every_connection_busy_a_new_one_is_closed_at_once() {
        let limits = Limits {
            max_connections: 2,
            header_timeout: Duration::from_secs(60),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A request that never ends holds its connection, as a progress stream does.
        let router = Router::new().route(
            "/",
            axum::routing::get(std::future::pending::<&'static str>),
        );
        tokio::spawn(serve_with(listener, router, limits, std::future::pending()));
        tokio::task::spawn_blocking(move || {
            let busy: Vec<_> = (0..2)
                .map(|_| {
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    s
                })
                .collect();
            std::thread::sleep(Duration::from_millis(200));
            let mut extra = std::net::TcpStream::connect(addr).unwrap();
            assert!(closed_within(&mut extra, Duration::from_secs(3)));
            drop(busy);
        })
        .await
        .unwrap();
    }
}
