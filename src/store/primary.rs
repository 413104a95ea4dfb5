//! Following the primary of a Postgres formation. An HA engine (pg_auto_failover, Patroni)
//! hands clients libpq's multi-host URL, `postgres://h1:p1,h2:p2/db?target_session_attrs=
//! read-write`, which sqlx cannot open: it takes one host. So a node asks each host in turn
//! whether it is in recovery, opens its pools on the one that is not, and keeps asking. When
//! the primary dies or turns standby (a failover, a switchover), the pools open their next
//! connections on the new primary, and drop the ones opened before as they are handed out;
//! meanwhile statements fail, so sends are answered `unavailable` (and retried by their
//! clients with the same client_id) and `/readyz` says 503 until a primary answers again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sea_orm::sqlx::{self, Connection};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// A URL with several hosts, or one that asks for the read-write host: which hosts, and which
/// one the node writes to now.
pub struct Formation {
    /// `scheme://userinfo@` before the hosts and `/db?params` after them, without
    /// `target_session_attrs` (sqlx knows no such parameter; finding the primary is this
    /// module's work).
    head: String,
    tail: String,
    hosts: Vec<(String, u16)>,
    /// The host the pools open connections to.
    primary: AtomicUsize,
    /// Whether the last look found a primary (`/readyz`).
    found: AtomicBool,
    /// When the pools last moved to another host: a connection opened before is dropped
    /// when next handed out.
    moved: Mutex<Instant>,
}

impl Formation {
    /// `None` for a plain URL: one host, nothing asked of it.
    pub fn parse(url: &str) -> Option<Formation> {
        let scheme = url.find("://")? + 3;
        let authority_end = url[scheme..]
            .find(['/', '?'])
            .map_or(url.len(), |i| scheme + i);
        let authority = &url[scheme..authority_end];
        let hosts_start = authority.rfind('@').map_or(scheme, |at| scheme + at + 1);
        let list = &url[hosts_start..authority_end];
        let (path, query) = match url[authority_end..].split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (&url[authority_end..], None),
        };
        let params: Vec<&str> = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
            .collect();
        let asks_for_primary = params
            .iter()
            .any(|p| p.starts_with("target_session_attrs="));
        if !list.contains(',') && !asks_for_primary {
            return None;
        }
        let hosts = list
            .split(',')
            .map(|host| match host.rsplit_once(':') {
                Some((name, port)) if !port.contains(']') => {
                    Some((name.to_owned(), port.parse().ok()?))
                }
                _ => Some((host.to_owned(), 5432)),
            })
            .collect::<Option<Vec<_>>>()?;
        if hosts.iter().any(|(name, _)| name.is_empty()) {
            return None;
        }
        let kept: Vec<&str> = params
            .into_iter()
            .filter(|p| !p.starts_with("target_session_attrs="))
            .collect();
        let tail = if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", kept.join("&"))
        };
        Some(Formation {
            head: url[..hosts_start].to_owned(),
            tail,
            hosts,
            primary: AtomicUsize::new(0),
            found: AtomicBool::new(false),
            moved: Mutex::new(Instant::now()),
        })
    }

    /// The URL of one host, as sqlx takes it.
    pub fn url_of(&self, host: usize) -> String {
        let (name, port) = &self.hosts[host.min(self.hosts.len() - 1)];
        format!("{}{name}:{port}{}", self.head, self.tail)
    }

    /// The URL of the host the pools write to.
    pub fn primary_url(&self) -> String {
        self.url_of(self.primary.load(Ordering::Relaxed))
    }

    /// Whether the last look found a primary to write to.
    pub fn has_primary(&self) -> bool {
        self.found.load(Ordering::Relaxed)
    }

    /// Whether a pooled connection of this `age` was opened on the current primary.
    pub fn is_current(&self, age: Duration) -> bool {
        self.moved
            .lock()
            .map(|moved| age < moved.elapsed())
            .unwrap_or(true)
    }

    /// Asks every host, in order, until one is not in recovery; `base` says how to connect
    /// (TLS, user) but for the host. Remembers it, and returns its index.
    pub async fn find(&self, base: &PgConnectOptions, timeout: Duration) -> Option<usize> {
        for (index, (name, port)) in self.hosts.iter().enumerate() {
            let options = base.clone().host(name).port(*port);
            let writable = tokio::time::timeout(timeout, async {
                let mut conn = PgConnection::connect_with(&options).await?;
                let primary = is_primary(&mut conn).await;
                let _ = conn.close().await;
                primary
            })
            .await;
            if let Ok(Ok(true)) = writable {
                let before = self.primary.swap(index, Ordering::Relaxed);
                if before != index
                    && let Ok(mut moved) = self.moved.lock()
                {
                    *moved = Instant::now();
                }
                self.found.store(true, Ordering::Relaxed);
                return Some(index);
            }
        }
        self.found.store(false, Ordering::Relaxed);
        None
    }

    /// Asks the primary every `every` whether it still is; when it does not answer or has
    /// turned standby, looks for the new one and moves `pools` there.
    pub async fn follow(
        self: std::sync::Arc<Self>,
        pools: Vec<PgPool>,
        every: Duration,
        timeout: Duration,
        metrics: std::sync::Arc<Metrics>,
        shutdown: CancellationToken,
    ) {
        let Some(first) = pools.first() else { return };
        self.show(&metrics.database);
        let mut probe: Option<PgConnection> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
            if let Some(conn) = probe.as_mut()
                && let Ok(Ok(Some(lag))) = tokio::time::timeout(timeout, standby_lag(conn)).await
            {
                metrics.database.standby_lag.set(lag);
                continue;
            }
            probe = None;
            let base = (*first.connect_options()).clone();
            let before = self.primary.load(Ordering::Relaxed);
            let Some(now) = self.find(&base, timeout).await else {
                tracing::warn!(
                    hosts = self.hosts.len(),
                    "no host of the database is a primary; sends are refused until one is"
                );
                continue;
            };
            let (name, port) = &self.hosts[now];
            if now != before {
                for pool in &pools {
                    let options = (*pool.connect_options()).clone().host(name).port(*port);
                    pool.set_connect_options(options);
                }
                metrics.database.moves.inc();
                self.show(&metrics.database);
                tracing::warn!(host = %name, port, "the database's primary moved; following it");
            }
            let options = base.host(name).port(*port);
            probe = tokio::time::timeout(timeout, PgConnection::connect_with(&options))
                .await
                .ok()
                .and_then(Result::ok);
        }
    }

    /// Which host is the primary, in `/metrics`.
    fn show(&self, database: &crate::metrics::Database) {
        let primary = self.primary.load(Ordering::Relaxed);
        for (index, (name, port)) in self.hosts.iter().enumerate() {
            let gauge = database
                .primary
                .get_or_create(&vec![("host", format!("{name}:{port}"))]);
            gauge.set(i64::from(index == primary));
        }
    }
}

/// The primary's slowest standby's replay lag in seconds (-1 with no standby), or `None`
/// when this server is no primary (any more): one round trip for both.
async fn standby_lag(conn: &mut PgConnection) -> Result<Option<f64>, sqlx::Error> {
    let (in_recovery, standbys, lag): (bool, i64, f64) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), count(*), \
                COALESCE(EXTRACT(epoch FROM max(replay_lag)), 0)::float8 \
         FROM pg_stat_replication",
    )
    .fetch_one(conn)
    .await?;
    Ok((!in_recovery).then_some(if standbys == 0 { -1.0 } else { lag }))
}

async fn is_primary(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(conn)
        .await?;
    Ok(!in_recovery)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_plain_url_is_no_formation() {
        assert!(Formation::parse("postgres://duet:pw@db:5432/duet?sslmode=disable").is_none());
        assert!(Formation::parse("sqlite://data/duet.db").is_none());
    }

    #[test]
    fn the_multi_host_url_of_pg_auto_failover_names_each_host_for_sqlx() {
        let url = "postgres://duet:p%40ss@127.0.0.1:16501,127.0.0.1:16502/duet?sslmode=disable&target_session_attrs=read-write";
        let formation = Formation::parse(url).unwrap();
        assert_eq!(
            formation.hosts,
            [("127.0.0.1".into(), 16501), ("127.0.0.1".into(), 16502)]
        );
        assert_eq!(
            formation.url_of(1),
            "postgres://duet:p%40ss@127.0.0.1:16502/duet?sslmode=disable"
        );
        // A host without a port gets Postgres' own; one host asking for the primary counts.
        let one =
            Formation::parse("postgresql://db-a/duet?target_session_attrs=read-write").unwrap();
        assert_eq!(one.url_of(0), "postgresql://db-a:5432/duet");
        assert!(Formation::parse("postgres://a:5432,:5433/duet").is_none());
        assert!(Formation::parse("postgres://a:5432,b:port/duet").is_none());
    }

    #[test]
    fn a_connection_opened_before_the_primary_moved_is_not_handed_out() {
        let formation = Formation::parse("postgres://a,b/duet").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // Opened 10 ms ago: after the formation was made.
        assert!(formation.is_current(Duration::from_millis(10)));
        *formation.moved.lock().unwrap() = Instant::now();
        assert!(!formation.is_current(Duration::from_millis(10)));
    }
}
