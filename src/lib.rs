//! Duet: a real-time chat for couples. A node is stateless beyond its own sockets: the
//! database holds the truth, the bus rings the partner's node. `start` builds a node from a
//! `Config`; `main` and the integration tests both use it.

#![warn(missing_docs)]

// In alphabetical order. No two of them depend on each other, directly or through others
// (checked by tests/api/architecture.rs); docs/LAYOUT.md describes them. Public are only what
// `main` and the integration tests call, each item of it documented (`missing_docs`).
mod account;
mod album;
mod anniversary;
mod breakup;
mod bus;
mod chat;
pub mod config;
mod couple;
mod device;
mod error;
mod export;
mod file;
mod frame;
mod heavy;
pub mod http;
mod memory;
mod metrics;
mod nudge;
mod pairing;
mod publish;
mod push;
pub mod question;
mod seats;
mod services;
mod state;
pub mod store;
mod view;
mod words;
mod ws;

use std::net::SocketAddr;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::push::open as open_push;

/// Measures a recording (`duet measure-recording`, run by a node in a process of its own):
/// its content type and length in milliseconds, or `None` when the bytes hold no audio this
/// server recognises.
pub fn measure_recording(bytes: Vec<u8>, sniffed: &str) -> Option<(String, i64)> {
    file::recording::probe(bytes, sniffed).map(|r| (r.content_type, r.duration_ms))
}

use crate::bus::Bus;
use crate::config::Config;
use crate::services::Services;
use crate::state::AppState;

/// A running node.
pub struct Node {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: AppState,
    server: JoinHandle<()>,
}

/// Connects the database (migrating it) and the bus, binds, and starts serving.
pub async fn start(config: Config) -> anyhow::Result<Node> {
    let formation = store::formation(&config);
    let db = store::connect_to(&config, formation.as_ref()).await?;
    store::migrate(&db).await?;
    let reads = store::connect_reads(&config, &db, formation.as_ref()).await?;
    let standby = store::connect_standby(&config).await?;
    let metrics = std::sync::Arc::new(metrics::Metrics::new());
    let bus = match config.redis_target() {
        None => Bus::local(),
        Some(target) => {
            let settings = bus::RedisSettings {
                target,
                prefix: config.redis_prefix.clone(),
                presence_ttl: config.presence_ttl(),
            };
            let redis = bus::RedisBus::start(settings, metrics.clone())
                .await
                .context("connecting to Redis (REDIS_URL or REDIS_CLUSTER_URLS); start it with `redis-server` (or tests/cluster/start.sh --redis-cluster), or unset both for one node")?;
            Bus::Redis(redis)
        }
    };
    let catalogue = question::Catalogue::load(&db).await?;
    let files_dir = config.files_dir();
    let files = file::LocalDir::new(&files_dir)
        .with_context(|| format!("creating the files directory {}", files_dir.display()))?;
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_addr()? {
        None => None,
        // Metrics are for the operator, not worth a node that does not start: a taken port
        // costs the scrape, not the chats.
        Some(at) => match TcpListener::bind(at).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(addr = %at, error = %e, "cannot listen for /metrics; running without it");
                None
            }
        },
    };
    let origins = config.allowed_origins(addr);
    // SQLite has one writer: a second shard, or a second batch under way, would only queue
    // behind the first.
    let (writers, depth) = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => (1, 1),
        _ => (config.commit_writers, config.commit_pipeline),
    };
    let vapid = push::Vapid::load(
        &db,
        config.vapid_private_key.as_deref(),
        &config.vapid_subject,
    )
    .await?;
    let (pusher, push_worker) =
        push::Pusher::new(&config, db.clone(), bus.clone(), metrics.clone(), vapid)?;
    let services = Services::new(
        config,
        db,
        (reads, standby),
        bus,
        metrics,
        std::sync::Arc::new(files),
        pusher,
    );
    services
        .tasks
        .spawn(push_worker.run(services.shutdown.clone()));
    // Every background loop is a task of `services.tasks` and ends on `services.shutdown`,
    // so `Node::stop` below is the one place that decides the order things stop in.
    let committer = chat::Committer::spawn(&services, catalogue.clone(), writers, depth);
    breakup::spawn_sweeper(services.clone());
    let logins = std::sync::Arc::new(account::Guard::new(&services.config));
    account::spawn_sweeper(services.clone(), logins.clone());
    file::sweeper::spawn(services.clone(), services.config.sweep_period());
    chat::find::spawn_index_upkeep(services.clone(), services.config.search_merge_period());
    let state = AppState::new(services, committer, catalogue.clone(), origins, logins);
    catalogue.watch(
        state.db.clone(),
        state.config.catalogue_refresh(),
        state.shutdown.clone(),
        &state.tasks,
    );
    if let Some(formation) = &formation {
        let pools = vec![
            state.db.get_postgres_connection_pool().clone(),
            state.reads.get_postgres_connection_pool().clone(),
        ];
        state.tasks.spawn(formation.clone().follow(
            pools,
            state.config.db_probe(),
            state.config.db_timeout(),
            state.metrics.clone(),
            state.shutdown.clone(),
        ));
    }
    http::spawn_database_check(state.clone(), formation);
    let app = http::router(state.clone(), ws::router());
    let shutdown = state.shutdown.clone();
    let server = tokio::spawn(async move {
        // Frames are small and already batched per burst: Nagle would only hold them back.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY");
            }
        });
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    let metrics_addr = serve_metrics(&state, metrics_listener).await;
    tracing::info!(%addr, "duet node listening");
    Ok(Node {
        addr,
        metrics_addr,
        state,
        server,
    })
}

impl Node {
    /// The address the API listens on (the port actually bound when `DUET_BIND` asked for 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's counters, as `/metrics` shows them (tests read them here, whatever
    /// listener serves `/metrics`).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.state.metrics
    }

    /// Where `/metrics` is served (`DUET_METRICS_BIND`); `None` when off or the port was taken.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Drains: fails `/readyz` and refuses upgrades while still serving for the drain delay
    /// (the load balancer's turn to notice), then closes the port, closes sockets with 1012,
    /// waits for requests, sockets and commits to finish (at most the configured drain
    /// time), and only then stops the bus, so the other nodes hear this one's last events.
    pub async fn stop(self) {
        self.state.start_draining();
        let delay = self.state.config.drain_delay();
        if !delay.is_zero() {
            tracing::info!(
                ?delay,
                "draining: /readyz fails; closing the port after the delay"
            );
            tokio::time::sleep(delay).await;
        }
        self.state.shutdown.cancel();
        self.state.tasks.close();
        let drain = self.state.config.drain_time();
        let tasks = self.state.tasks.clone();
        let finished = tokio::time::timeout(drain, async move {
            let _ = self.server.await;
            tasks.wait().await;
        })
        .await;
        if finished.is_err() {
            tracing::warn!(?drain, "drain time ran out; exiting anyway");
        }
        self.state.bus.stop().await;
        self.state.db.clone().close().await.ok();
        self.state.reads.clone().close().await.ok();
        if let Some(standby) = &self.state.standby {
            standby.clone().close().await.ok();
        }
    }
}

/// Serves `/metrics` on its own listener until shutdown; returns its address.
async fn serve_metrics(state: &AppState, listener: Option<TcpListener>) -> Option<SocketAddr> {
    let listener = listener?;
    let addr = listener.local_addr().ok()?;
    let app = http::metrics_router(state.clone());
    let shutdown = state.shutdown.clone();
    state.tasks.spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "metrics listener stopped");
        }
    });
    tracing::info!(%addr, "metrics on their own listener");
    Some(addr)
}
