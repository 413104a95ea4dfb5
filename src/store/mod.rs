//! The only layer that touches the database. Everything above it speaks in the product's
//! words (users, couples, chats); this layer speaks sea-orm, on Postgres or SQLite alike.

pub(crate) mod anniversaries;
pub(crate) mod blobs;
pub(crate) mod chats;
pub(crate) mod couples;
pub(crate) mod events;
pub(crate) mod files;
pub mod primary;
pub(crate) mod push;
pub mod questions;
pub mod sends;
pub mod users;
pub(crate) mod words;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode};
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous,
};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};

use crate::config::Config;
pub use primary::Formation;

/// `column` is one of `ids`. On Postgres that is one array parameter (`= ANY($1)`): the same
/// statement for any number of ids, where `IN ($1, ..., $n)` binds n parameters and is a
/// statement of its own for every n (a replay's page of a thousand chats bound a thousand).
/// SQLite has no arrays.
pub(crate) fn one_of<C: sea_orm::ColumnTrait>(
    db: &impl ConnectionTrait,
    column: C,
    ids: Vec<uuid::Uuid>,
) -> sea_orm::sea_query::Expr {
    match db.get_database_backend() {
        DbBackend::Postgres => column.eq_any(ids),
        _ => column.is_in(ids),
    }
}

/// SQLite checks a read's deadline every this many virtual machine instructions (some
/// microseconds of work).
const SQLITE_PROGRESS_OPS: i32 = 1000;

fn database_url(config: &Config) -> anyhow::Result<String> {
    Ok(match &config.database_url {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("creating the data directory {}", config.data_dir.display())
            })?;
            format!("sqlite://{}/duet.db", config.data_dir.display())
        }
    })
}

/// How the main pool's sessions plan. Its statements are short and keyed (a send, a read
/// mark, a page of history); heavy reads have their own pool. Planned afresh for each call,
/// the commit's statements with many parts spend longer in the planner than in execution, so
/// each is planned once per connection (`force_generic_plan`). Planned while a table is
/// still small (a new database), such a plan would scan it whole; without sequential scans
/// it looks rows up by key however large the table has grown since. A statement that has to
/// scan still does, at a cost the planner then reckons so high that it would compile it
/// (JIT, tens of milliseconds): a short statement is never worth compiling.
const SHORT_STATEMENTS: [(&str, &str); 3] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
    ("jit", "off"),
];

/// Connects to the configured database, creating the embedded SQLite file on first start.
/// A multi-host URL is opened on the host that is primary now, and not followed further.
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    connect_to(config, formation(config).as_ref()).await
}

/// The formation `DATABASE_URL` names, if it names several hosts (or asks for the primary).
pub fn formation(config: &Config) -> Option<Arc<Formation>> {
    config
        .database_url
        .as_deref()
        .and_then(Formation::parse)
        .map(Arc::new)
}

/// The URL the pools open: the formation's primary, found now, or `DATABASE_URL` as it is.
async fn url_to_open(
    config: &Config,
    formation: Option<&Arc<Formation>>,
) -> anyhow::Result<String> {
    let Some(formation) = formation else {
        return database_url(config);
    };
    let first = formation.url_of(0);
    let tls = postgres_tls(&first, config.db_tls.as_deref())?;
    let base: PgConnectOptions = first
        .parse()
        .with_context(|| format!("reading the database URL {}", redact(&first)))?;
    formation
        .find(&with_tls(base, tls), config.db_timeout())
        .await
        .with_context(|| {
            format!(
                "no host of {} is a primary (all are in recovery or do not answer)",
                redact(config.database_url.as_deref().unwrap_or_default())
            )
        })?;
    Ok(formation.primary_url())
}

/// Connects the main pool; with a formation, on its primary, and a connection opened on an
/// earlier primary is dropped rather than handed out (see `primary`).
pub async fn connect_to(
    config: &Config,
    formation: Option<&Arc<Formation>>,
) -> anyhow::Result<DatabaseConnection> {
    let url = url_to_open(config, formation).await?;
    let sqlite = url.starts_with("sqlite:");
    let mut options = ConnectOptions::new(url.clone());
    options
        .acquire_timeout(config.db_timeout())
        .connect_timeout(config.db_timeout())
        .sqlx_logging(false);
    if sqlite {
        // SQLite allows one writer at a time; a single connection turns what would be
        // "database is locked" failures into an orderly queue, and WAL keeps it quick.
        // FULL: every commit is synced to disk before it returns, so an acked chat survives
        // a power loss too (NORMAL may lose the last commits of the WAL then; an ack must
        // mean stored). The group commit shares one sync among the sends of a batch.
        options.max_connections(1).min_connections(1);
        options.map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
        });
    } else {
        options
            .max_connections(config.db_max_connections)
            // Opening a Postgres connection takes milliseconds; keep a few ready.
            .min_connections(config.db_max_connections.min(4))
            // sqlx would ping the server at every checkout: a round trip per statement.
            // A broken connection fails its statement instead, and the pool replaces it.
            .test_before_acquire(false);
        let tls = postgres_tls(&url, config.db_tls.as_deref())?;
        options.map_sqlx_postgres_opts(move |o: PgConnectOptions| {
            with_tls(o, tls).options(SHORT_STATEMENTS)
        });
        follow_with(&mut options, formation);
    }
    let db = Database::connect(options)
        .await
        .with_context(|| format!("connecting to the database at {}", redact(&url)))?;
    Ok(db)
}

/// The pool for heavy reads (`DUET_READ_CONNECTIONS`), whose statements are cut off after
/// `DUET_READ_TIMEOUT_MS`: on Postgres by the server's `statement_timeout`, on SQLite by a
/// progress handler that interrupts a statement past the deadline set when its connection
/// is handed out. Its own connections, so however many heavy reads wait, the main pool
/// still serves sends and short reads. SQLite's readers are read-only connections beside the
/// one writer (WAL lets them read while it writes); an in-memory SQLite database, which
/// other connections cannot see, reads through `main`.
pub async fn connect_reads(
    config: &Config,
    main: &DatabaseConnection,
    formation: Option<&Arc<Formation>>,
) -> anyhow::Result<DatabaseConnection> {
    let url = match formation {
        Some(formation) => formation.primary_url(),
        None => database_url(config)?,
    };
    let sqlite = url.starts_with("sqlite:");
    if sqlite && (url.contains(":memory:") || url.contains("mode=memory")) {
        return Ok(main.clone());
    }
    read_pool(config, &url, formation, false).await
}

/// The heavy reads' pool on a standby (`DUET_DATABASE_READ_URL`), if one is configured. Its
/// connections open when first needed: a standby that is down costs the reads a fall back to
/// the primary, not the node its start.
pub async fn connect_standby(config: &Config) -> anyhow::Result<Option<DatabaseConnection>> {
    match config.database_read_url.as_deref() {
        Some(url) if url.starts_with("postgres") => {
            Ok(Some(read_pool(config, url, None, true).await?))
        }
        Some(url) => anyhow::bail!(
            "DUET_DATABASE_READ_URL must be a Postgres standby (postgres://...), not {}",
            redact(url)
        ),
        None => Ok(None),
    }
}

async fn read_pool(
    config: &Config,
    url: &str,
    formation: Option<&Arc<Formation>>,
    lazy: bool,
) -> anyhow::Result<DatabaseConnection> {
    let sqlite = url.starts_with("sqlite:");
    let timeout = config.read_timeout();
    let mut options = ConnectOptions::new(url.to_owned());
    options.connect_lazy(lazy);
    options
        .max_connections(config.read_connections.max(1))
        .min_connections(0)
        .acquire_timeout(config.db_timeout())
        .connect_timeout(config.db_timeout())
        .test_before_acquire(false)
        .sqlx_logging(false);
    if sqlite {
        options.map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
            o.read_only(true).busy_timeout(Duration::from_secs(5))
        });
        // A fresh connection gets its deadline when opened, a pooled one when handed out
        // again: either way per checkout, which is one statement (or one stream of rows).
        options.map_sqlx_sqlite_pool_opts(move |pool| {
            pool.after_connect(move |conn, _| Box::pin(sqlite_deadline(conn, timeout)))
        });
        options.map_sqlx_sqlite_before_acquire(move |conn, _| {
            Box::pin(async move {
                sqlite_deadline(conn, timeout).await?;
                Ok(true)
            })
        });
    } else {
        options.statement_timeout(timeout);
        let tls = postgres_tls(url, config.db_tls.as_deref())?;
        options.map_sqlx_postgres_opts(move |o: PgConnectOptions| with_tls(o, tls));
        follow_with(&mut options, formation);
    }
    Database::connect(options)
        .await
        .with_context(|| format!("connecting the read pool at {}", redact(url)))
}

/// Makes SQLite interrupt whatever this connection runs from `timeout` on.
async fn sqlite_deadline(
    conn: &mut SqliteConnection,
    timeout: Duration,
) -> Result<(), sea_orm::sqlx::Error> {
    let deadline = Instant::now() + timeout;
    conn.lock_handle()
        .await?
        .set_progress_handler(SQLITE_PROGRESS_OPS, move || Instant::now() < deadline);
    Ok(())
}

/// The TLS mode asked for: `None` to decide by the host. A `sslmode` in the URL is the
/// operator's explicit choice and is left alone.
fn postgres_tls(url: &str, setting: Option<&str>) -> anyhow::Result<Option<PgSslMode>> {
    if url.contains("sslmode=") {
        return Ok(url
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("sslmode="))
            .and_then(|m| m.parse().ok()));
    }
    setting
        .map(|mode| {
            mode.parse().map_err(|_| {
                anyhow::anyhow!(
                    "DUET_DB_TLS must be disable, prefer, require, verify-ca or verify-full, not {mode:?}"
                )
            })
        })
        .transpose()
}

/// `tls` as `postgres_tls` decided it; undecided, off on this machine and preferred elsewhere.
fn with_tls(options: PgConnectOptions, tls: Option<PgSslMode>) -> PgConnectOptions {
    match tls {
        Some(mode) => options.ssl_mode(mode),
        None if is_local(options.get_host()) => options.ssl_mode(PgSslMode::Disable),
        None => options.ssl_mode(PgSslMode::Prefer),
    }
}

/// A pooled connection opened before the formation's primary moved is dropped when next
/// handed out, not used: it leads to the old primary, gone or now read-only. Asking its age
/// costs nothing; asking the server (`test_before_acquire`) would cost a round trip per
/// statement.
fn follow_with(options: &mut ConnectOptions, formation: Option<&Arc<Formation>>) {
    if let Some(formation) = formation.cloned() {
        options.map_sqlx_postgres_before_acquire(move |_, meta| {
            let current = formation.is_current(meta.age);
            Box::pin(async move { Ok(current) })
        });
    }
}

/// A Postgres server on this machine: loopback, or a Unix socket directory.
fn is_local(host: &str) -> bool {
    host.starts_with('/')
        || host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Brings the schema up to date. Nodes of a cluster start together, so on Postgres the
/// migrations run in one transaction holding an advisory lock: the first node migrates, the
/// others wait and then find nothing left to do.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Migrator::up(db, None)
            .await
            .context("migrating the database");
    }
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        .await
        .context("waiting for the migration lock")?;
    Migrator::up(&txn, None)
        .await
        .context("migrating the database")?;
    txn.commit().await.context("committing the migrations")?;
    Ok(())
}

/// Any constant shared by every node; "duet" in ASCII.
const MIGRATION_LOCK: i64 = 0x6475_6574;

/// Hides a password in a connection URL before it reaches a log or an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn tls_to_postgres_is_the_operators_choice_and_off_on_this_machine_by_default() {
        let url = "postgres://duet@db.example:5432/duet";
        assert!(postgres_tls(url, None).unwrap().is_none());
        assert!(matches!(
            postgres_tls(url, Some("require")).unwrap(),
            Some(PgSslMode::Require)
        ));
        assert!(postgres_tls(url, Some("sometimes")).is_err());
        // A sslmode in the URL wins over the setting.
        assert!(matches!(
            postgres_tls("postgres://h/db?sslmode=disable", Some("require")).unwrap(),
            Some(PgSslMode::Disable)
        ));
        for local in [
            "127.0.0.1",
            "localhost",
            "::1",
            "[::1]",
            "/var/run/postgresql",
        ] {
            assert!(is_local(local), "{local}");
        }
        assert!(!is_local("db.example"));
        assert!(!is_local("10.0.0.7"));
    }
}
