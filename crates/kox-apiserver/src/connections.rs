//! What a connection may hold of the server: how many connections one client address and all
//! clients together may keep open, how long a connection may stall or idle, how the accept loop
//! backs off when the process runs out of descriptors, and logging that cannot flood.
//!
//! Upstream closes a connection that stalls in its request headers (Go's `ReadHeaderTimeout`,
//! 32 s) or idles (`IdleTimeout`, 90 s); without these, clients that open TLS connections and
//! send nothing held every file descriptor and the API answered no one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1.1 connection may wait for a request's headers, from the end of the
/// previous response (so an idle HTTP/1.1 connection is closed then too).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(32);
/// How long a connection may have no request in flight before it is closed (HTTP/2: GOAWAY).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Descriptors kept back from client connections for the store, files and the server's own
/// components.
const RESERVED_DESCRIPTORS: usize = 1024;

/// Open connections, per client address and in all.
pub struct ConnectionLimits {
    per_client: usize,
    total: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    open_total: AtomicUsize,
}

/// One admitted connection; it counts until dropped.
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    peer: IpAddr,
}

/// Why a connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This address already holds its share.
    PerClient(usize),
    /// All clients together hold what the process can spare.
    Total(usize),
}

impl ConnectionLimits {
    /// At most `per_client` connections from one address, and in all what the process's
    /// descriptor limit leaves after a reserve.
    pub fn new(per_client: usize) -> Arc<Self> {
        let descriptors = rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
            .unwrap_or(1024);
        Self::with_total(per_client, total_for(descriptors))
    }

    fn with_total(per_client: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_client: per_client.max(1),
            total: total.max(1),
            open: Mutex::new(HashMap::new()),
            open_total: AtomicUsize::new(0),
        })
    }

    /// Admits a connection from `peer`, or says why not. Loopback clients (the server's own
    /// components among them) are held to their per-address share only, so that remote
    /// clients filling the total cannot cut the control plane off from its API.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let mut open = self.open.lock();
        let mine = open.entry(peer).or_insert(0);
        if *mine >= self.per_client {
            return Err(Refusal::PerClient(self.per_client));
        }
        if !peer.is_loopback() && self.open_total.load(Ordering::Relaxed) >= self.total {
            return Err(Refusal::Total(self.total));
        }
        *mine += 1;
        self.open_total.fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionPermit {
            limits: self.clone(),
            peer,
        })
    }
}

/// Connections all clients may hold with `descriptors` available: what a reserve leaves, and
/// at least half.
fn total_for(descriptors: usize) -> usize {
    descriptors
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(descriptors / 2)
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock();
        if let Some(n) = open.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
        self.limits.open_total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a connection has requests in flight, since when it has had none, and whether it
/// ever had one.
pub struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<tokio::time::Instant>,
    used: AtomicBool,
}

/// One request in flight on a connection, until its response body is dropped.
pub struct InFlight(Arc<Activity>);

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(tokio::time::Instant::now()),
            used: AtomicBool::new(false),
        })
    }

    /// A request begins.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.used.store(true, Ordering::Relaxed);
        *self.last.lock() = tokio::time::Instant::now();
        InFlight(self.clone())
    }

    /// Returns once the connection has had no request in flight for [`IDLE_TIMEOUT`], or for
    /// [`HEADER_READ_TIMEOUT`] before its first request: a client that connects and sends no
    /// request (HTTP/1.1 or HTTP/2, which are told apart only by its first bytes) is stalled.
    pub async fn idle(&self) {
        loop {
            let limit = if self.used.load(Ordering::Relaxed) {
                IDLE_TIMEOUT
            } else {
                HEADER_READ_TIMEOUT
            };
            let idle = if self.in_flight.load(Ordering::Relaxed) == 0 {
                self.last.lock().elapsed()
            } else {
                Duration::ZERO
            };
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last.lock() = tokio::time::Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The accept loop's pause after a failure (out of descriptors, mostly): 5 ms doubling to 1 s,
/// back to nothing after a success, so a full descriptor table does not spin a core.
#[derive(Default)]
pub struct AcceptBackoff {
    next: Option<Duration>,
}

impl AcceptBackoff {
    pub fn failed(&mut self) -> Duration {
        let d = self.next.map_or(Duration::from_millis(5), |d| {
            (d * 2).min(Duration::from_secs(1))
        });
        self.next = Some(d);
        d
    }

    pub fn succeeded(&mut self) {
        self.next = None;
    }
}

/// A log line that is written at most once per interval; the repeats in between are counted
/// and reported with the next line, so an attack cannot fill the disk with the server's log.
pub struct LogEvery {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogEvery {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Calls `log` with the number of repeats it stands for, if one is due.
    pub fn log(&self, log: impl FnOnce(u64)) {
        let mut last = self.last.lock();
        if last.is_some_and(|t| t.elapsed() < self.interval) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        log(self.suppressed.swap(0, Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_bounded_per_address_and_in_all() {
        let limits = ConnectionLimits::with_total(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refusal::PerClient(2)));
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Refusal::Total(3)));
        // Loopback clients are held to their own share only.
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let _l1 = limits.admit(local).unwrap();
        let _l2 = limits.admit(local).unwrap();
        assert_eq!(limits.admit(local).err(), Some(Refusal::PerClient(2)));
        // Their connections still count in the total.
        drop(first);
        assert_eq!(limits.admit(a).err(), Some(Refusal::Total(3)));
        drop((_l1, _l2));
        assert!(limits.admit(a).is_ok());
    }

    #[test]
    fn the_total_keeps_a_reserve() {
        assert_eq!(total_for(20_000), 18_976);
        assert_eq!(total_for(1024), 512);
    }

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let waits: Vec<u128> = (0..10).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(5));
    }

    #[test]
    fn repeated_lines_are_counted_not_written() {
        let every = LogEvery::new(Duration::from_secs(3600));
        let mut written = Vec::new();
        for _ in 0..1000 {
            every.log(|n| written.push(n));
        }
        assert_eq!(written, [0]);
        let now = LogEvery::new(Duration::ZERO);
        now.log(|n| written.push(n));
        assert_eq!(written, [0, 0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_requests_in_flight() {
        let started = tokio::time::Instant::now();
        let silent = Activity::new();
        silent.idle().await;
        assert_eq!(
            started.elapsed(),
            HEADER_READ_TIMEOUT,
            "a connection without requests"
        );

        let activity = Activity::new();
        let request = activity.begin();
        let idle = tokio::time::timeout(Duration::from_secs(300), activity.idle());
        assert!(idle.await.is_err(), "idle with a request in flight");
        drop(request);
        let started = tokio::time::Instant::now();
        activity.idle().await;
        assert_eq!(started.elapsed(), IDLE_TIMEOUT);
    }
}
