//! Every knob of a node in one struct: each field is a flag and an environment variable,
//! and its doc comment is the `--help` text. docs/PROTOCOL.md lists the limits among them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

/// A node's settings, from flags and environment variables (docs/CONFIGURATION.md).
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "DUET_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Where Prometheus scrapes `/metrics`: a listener of its own, never the API's port (the
    /// counters tell outsiders how busy the node is). `off` serves no metrics; an address
    /// that is taken is logged as a warning and the node runs without metrics.
    #[arg(long, env = "DUET_METRICS_BIND", default_value = "127.0.0.1:9464")]
    pub metrics_bind: String,

    /// Where the embedded SQLite database lives when no DATABASE_URL is given.
    #[arg(long, env = "DUET_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://...` or `sqlite://...`; unset means SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// A Postgres standby for heavy reads (search, the export, the album, long replays; our
    /// words stay on the primary, whose counts it writes): each is served there when the
    /// standby has replayed everything of the couple the primary has, else on the primary.
    /// Unset: heavy reads use the primary.
    #[arg(long, env = "DUET_DATABASE_READ_URL")]
    pub database_read_url: Option<String>,

    /// Milliseconds a heavy read waits for the standby to catch up with its couple before
    /// it goes to the primary instead.
    #[arg(long, env = "DUET_STANDBY_WAIT_MS", default_value_t = 100)]
    pub standby_wait_ms: u64,

    /// Enables the Redis bus so several nodes can serve one couple; unset means in-process.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Comma-separated nodes of a Redis Cluster (`redis://host:port,...`; a few are enough,
    /// the rest are discovered). Enables the bus on the cluster with sharded pub/sub, instead
    /// of REDIS_URL (set one or the other).
    #[arg(
        long,
        env = "REDIS_CLUSTER_URLS",
        value_delimiter = ',',
        conflicts_with = "redis_url"
    )]
    pub redis_cluster_urls: Vec<String>,

    /// Prefix of every Redis key and channel, so deployments (and tests) can share one Redis.
    #[arg(long, env = "DUET_REDIS_PREFIX", default_value = "duet:")]
    pub redis_prefix: String,

    /// Comma-separated allowed `Origin`s for state-changing requests and WebSocket upgrades.
    /// Unset: `http://<bind>` plus `http://localhost:<port>` and `http://127.0.0.1:<port>`.
    #[arg(long, env = "DUET_ORIGINS", value_delimiter = ',')]
    pub origins: Vec<String>,

    /// The browser client served at `/`.
    #[arg(long, env = "DUET_ASSETS_DIR", default_value = "assets")]
    pub assets_dir: PathBuf,

    /// How long a login lasts.
    #[arg(long, env = "DUET_SESSION_TTL_HOURS", default_value_t = 24 * 30)]
    pub session_ttl_hours: u64,

    /// Open WebSockets this node accepts before answering 503.
    #[arg(long, env = "DUET_MAX_SOCKETS", default_value_t = 10_000)]
    pub max_sockets: usize,

    /// Open WebSockets one user may hold on this node (tabs and devices); more get 429.
    #[arg(long, env = "DUET_MAX_SOCKETS_PER_USER", default_value_t = 8)]
    pub max_sockets_per_user: usize,

    /// WebSockets one user may open on this node per minute (also the burst); beyond, the
    /// upgrade is refused with 429 `rate_limited` and `Retry-After`. 0: no limit.
    #[arg(long, env = "DUET_SOCKET_RATE_PER_USER", default_value_t = 30)]
    pub socket_rate_per_user: u32,

    /// Frames queued for one socket before its client counts as slow and is disconnected.
    #[arg(long, env = "DUET_SOCKET_QUEUE", default_value_t = 256)]
    pub socket_queue: usize,

    /// Milliseconds a socket's client may take to accept what is written to it. Past it the
    /// client counts as slow: it is sent a 1013 close after the frames already under way
    /// (given as long again to read them), then dropped.
    #[arg(long, env = "DUET_SOCKET_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub socket_write_timeout_ms: u64,

    /// Largest WebSocket message a client may send; a bigger one closes the socket with 1009.
    #[arg(long, env = "DUET_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Sustained client frames per second per socket; beyond it they get `rate_limited`.
    #[arg(long, env = "DUET_FRAME_RATE", default_value_t = 20)]
    pub frame_rate: u32,

    /// Client frames a socket may send in a burst above the sustained rate.
    #[arg(long, env = "DUET_FRAME_BURST", default_value_t = 40)]
    pub frame_burst: u32,

    /// Seconds between server pings; at each, a socket also catches up and re-checks its
    /// session and couple (how long a revoked socket whose push was lost stays open).
    #[arg(long, env = "DUET_PING_SECS", default_value_t = 30)]
    pub ping_secs: u64,

    /// Seconds of client silence (no frame, no pong) after which the socket is closed.
    #[arg(long, env = "DUET_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Seconds a stopping node waits for its sockets and requests to finish.
    #[arg(long, env = "DUET_DRAIN_SECS", default_value_t = 10)]
    pub drain_secs: u64,

    /// Seconds a stopping node keeps serving with `/readyz` answering 503 before it closes
    /// its port and drains, so a load balancer notices and sends no new clients. Unset: 5
    /// with REDIS_URL or REDIS_CLUSTER_URLS (a cluster behind a load balancer), 0 without.
    #[arg(long, env = "DUET_DRAIN_DELAY_SECS")]
    pub drain_delay_secs: Option<u64>,

    /// Seconds a node's presence entries live without a heartbeat: how long a node that died
    /// silently still shows its users online.
    #[arg(long, env = "DUET_PRESENCE_TTL_SECS", default_value_t = 30)]
    pub presence_ttl_secs: u64,

    /// Seconds between scheduling a break-up and the couple's deletion (7 days).
    #[arg(long, env = "DUET_BREAKUP_GRACE_SECS", default_value_t = 7 * 24 * 60 * 60)]
    pub breakup_grace_secs: u64,

    /// Largest file upload, in bytes.
    #[arg(long, env = "DUET_MAX_UPLOAD_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Where uploaded files are kept (shared by every node of a cluster). Default:
    /// `files` in the data directory.
    #[arg(long, env = "DUET_FILES_DIR")]
    pub files_dir: Option<PathBuf>,

    /// Seconds after which an upload never sent in a chat is removed.
    #[arg(long, env = "DUET_ORPHAN_AGE_SECS", default_value_t = 24 * 60 * 60)]
    pub orphan_age_secs: u64,

    /// Seconds between two sweeps for removable files.
    #[arg(long, env = "DUET_SWEEP_SECS", default_value_t = 600)]
    pub sweep_secs: u64,

    /// Milliseconds between two merges of the search index's pending list into the index, on
    /// Postgres: merged often in the background, the list never fills, and no send's commit
    /// waits for the merge a full list forces. 0: leave it to inserts and autovacuum.
    #[arg(long, env = "DUET_SEARCH_MERGE_MS", default_value_t = 1000)]
    pub search_merge_ms: u64,

    /// Seconds between checks for question catalogue changes (an import reaches running
    /// nodes within this time).
    #[arg(long, env = "DUET_CATALOGUE_REFRESH_SECS", default_value_t = 30)]
    pub catalogue_refresh_secs: u64,

    /// Database connections in the pool (SQLite always uses one writer connection).
    #[arg(long, env = "DUET_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Database connections of the pool for heavy reads (searches, counting our words,
    /// exports, long replays), apart from the main pool, so those reads cannot take every
    /// connection that sends and short reads need.
    #[arg(long, env = "DUET_READ_CONNECTIONS", default_value_t = 4)]
    pub read_connections: u32,

    /// Milliseconds one statement of a heavy read may run before it is cut off (Postgres:
    /// `statement_timeout` on the read pool's connections; SQLite: a progress handler that
    /// interrupts the statement). The request is answered 503 `unavailable`.
    #[arg(long, env = "DUET_READ_TIMEOUT_MS", default_value_t = 5000)]
    pub read_timeout_ms: u64,

    /// TLS to Postgres: `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
    /// Unset: `disable` when the server is on this machine (loopback or a Unix socket), where
    /// encryption buys nothing and costs CPU on every chat, else `prefer`. A `sslmode` in
    /// DATABASE_URL wins over both.
    #[arg(long, env = "DUET_DB_TLS")]
    pub db_tls: Option<String>,

    /// Milliseconds the database may take to hand out a connection or to commit a batch of
    /// sends, and `/readyz` to answer. Past it a send is answered `unavailable` (the client
    /// sends it again with the same client_id) and `/readyz` says 503: an outage is reported
    /// within this bound rather than waited out.
    #[arg(long, env = "DUET_DB_TIMEOUT_MS", default_value_t = 2000)]
    pub db_timeout_ms: u64,

    /// With a multi-host `DATABASE_URL` (a formation: `postgres://h1:p1,h2:p2/db?
    /// target_session_attrs=read-write`), how often a node asks its primary whether it still
    /// is; when not, it looks for the new one and moves its pools there.
    #[arg(long, env = "DUET_DB_PROBE_MS", default_value_t = 500)]
    pub db_probe_ms: u64,

    /// Sends committed together at most (one transaction carries them all).
    #[arg(long, env = "DUET_COMMIT_MAX_BATCH", default_value_t = 512)]
    pub commit_max_batch: usize,

    /// Microseconds a commit waits for more sends after the first of a batch, when the last
    /// batch held more than one (sends that arrive during a commit make the next batch
    /// anyway; a lone send under light load never waits). It buys batches large enough to
    /// halve the database's work per chat at a few thousand chats/s (docs/PERFORMANCE.md).
    /// 0: never wait.
    #[arg(long, env = "DUET_COMMIT_WINDOW_US", default_value_t = 1000)]
    pub commit_window_us: u64,

    /// The commit window opens after a batch of at least this many sends (1: always).
    #[arg(long, env = "DUET_COMMIT_WINDOW_AFTER", default_value_t = 2)]
    pub commit_window_after: usize,

    /// Batches committed in parallel on Postgres (a couple always goes to the same one, so
    /// its order holds). More means smaller batches, and measured slower here. SQLite has
    /// one writer and always uses one.
    #[arg(long, env = "DUET_COMMIT_WRITERS", default_value_t = 1)]
    pub commit_writers: usize,

    /// Batches a writer has under way at once on Postgres: the next batch is built and sent
    /// while the previous one commits, so a send does not wait for a commit it is not in (a
    /// couple is never in two at once, so its order holds). 1: one after the other. SQLite
    /// always uses 1.
    #[arg(long, env = "DUET_COMMIT_PIPELINE", default_value_t = 2)]
    pub commit_pipeline: usize,

    /// Bytes of a replay or catch-up written to a socket between two flushes. The socket's
    /// write buffer keeps the largest size it reached for as long as the socket is open
    /// (tungstenite never shrinks it), so every socket that was replayed keeps about this much;
    /// bigger makes a long replay take fewer writes.
    #[arg(long, env = "DUET_SOCKET_FLUSH_BYTES", default_value_t = 1024)]
    pub socket_flush_bytes: usize,

    /// Bytes of a socket's read buffer, allocated for every open socket, and the most one read
    /// takes from the kernel. A frame bigger than it grows the buffer (read in pieces of this
    /// size), and the socket keeps the grown buffer; most frames a client sends are under 256
    /// bytes.
    #[arg(long, env = "DUET_SOCKET_READ_BUFFER", default_value_t = 256)]
    pub socket_read_buffer: usize,

    /// Password hashes (Argon2id, about 19 MiB of memory each) computed at once. Unset: one
    /// per core, which is as fast as hashing gets; more only adds memory.
    #[arg(long, env = "DUET_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,

    /// Milliseconds a login or sign-up waits for its turn to hash before it is refused with
    /// 429 `rate_limited` and `Retry-After`, rather than queueing without end.
    #[arg(long, env = "DUET_HASH_WAIT_MS", default_value_t = 1000)]
    pub hash_wait_ms: u64,

    /// Logins and sign-ups per minute from one client address (also the burst); beyond,
    /// 429 `rate_limited`. 0: no limit.
    #[arg(long, env = "DUET_LOGIN_RATE_PER_ADDR", default_value_t = 30)]
    pub login_rate_per_addr: u32,

    /// Logins and sign-ups per minute for one username, from anywhere (also the burst);
    /// beyond, 429 `rate_limited`. 0: no limit.
    #[arg(long, env = "DUET_LOGIN_RATE_PER_USER", default_value_t = 10)]
    pub login_rate_per_user: u32,

    /// Username availability checks per minute from one client address (also the burst);
    /// beyond, 429 `rate_limited`: the check tells whether an account exists, so it is not
    /// a free list of who uses Duet. 0: no limit.
    #[arg(long, env = "DUET_USERNAME_CHECKS_PER_ADDR", default_value_t = 60)]
    pub username_checks_per_addr: u32,

    /// Comma-separated addresses or CIDR ranges of the proxies in front of this node. A
    /// request from one of them is counted against the address its `X-Forwarded-For` names
    /// (the last one not itself a trusted proxy); from anywhere else, against the peer.
    #[arg(long, env = "DUET_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// Total bytes of files one couple may keep (sent or not yet); an upload past it is 413
    /// `too_large`. 0: no quota.
    #[arg(long, env = "DUET_COUPLE_QUOTA_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub couple_quota_bytes: u64,

    /// The time zone (IANA name) of a couple's dates until either partner sets theirs.
    #[arg(long, env = "DUET_TIME_ZONE", default_value = "UTC", value_parser = parse_time_zone)]
    pub time_zone: chrono_tz::Tz,

    /// Most words one couple may leave out of its most used words; past it, 422.
    #[arg(long, env = "DUET_MAX_EXCLUDED_WORDS", default_value_t = 500)]
    pub max_excluded_words: u64,

    /// Most own dates (anniversaries) one couple may keep; past it, 422.
    #[arg(long, env = "DUET_MAX_COUPLE_DATES", default_value_t = 100)]
    pub max_couple_dates: u64,

    /// How many of the couple's chats one request of counting words reads (the rest waits
    /// for the next request), so a long history is caught up in bounded steps.
    #[arg(long, env = "DUET_WORDS_BATCH", default_value_t = 20_000)]
    pub words_batch: u64,

    /// Bytes of chat text one step of counting words reads at most (the chat that crosses
    /// it is the step's last), so a history of long chats is counted in bounded memory.
    #[arg(long, env = "DUET_WORDS_BATCH_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub words_batch_bytes: usize,

    /// "Thinking of you" nudges one user may send per minute on this node (and as many at
    /// once); beyond, `rate_limited`. 0: no limit.
    #[arg(long, env = "DUET_NUDGES_PER_MINUTE", default_value_t = 3)]
    pub nudges_per_minute: u32,

    /// The most pixels a photo may have (width times height); a bigger one (a decompression
    /// bomb, or simply too big to show) is refused at upload with `too_large`.
    #[arg(long, env = "DUET_MAX_IMAGE_PIXELS", default_value_t = 40_000_000)]
    pub max_image_pixels: u64,

    /// The program that measures a voice note in a process of its own (`duet
    /// measure-recording`); unset: this program.
    #[arg(long, env = "DUET_RECORDING_PROBE")]
    pub recording_probe: Option<std::path::PathBuf>,

    /// The longest voice note, in seconds; a longer recording is refused at upload.
    #[arg(long, env = "DUET_MAX_VOICE_SECS", default_value_t = 300)]
    pub max_voice_secs: u64,

    /// Photos whose thumbnails are made at once on a node (decoding is CPU and memory work,
    /// on the blocking pool); more wait their turn.
    #[arg(long, env = "DUET_THUMBNAIL_CONCURRENCY", default_value_t = 2)]
    pub thumbnail_concurrency: usize,

    /// How long after sending it a chat can be edited, in seconds.
    #[arg(long, env = "DUET_EDIT_WINDOW_SECS", default_value_t = 24 * 60 * 60)]
    pub edit_window_secs: u64,

    /// How many times one chat can be edited.
    #[arg(long, env = "DUET_MAX_EDITS", default_value_t = 10)]
    pub max_edits: u32,

    /// The cluster's VAPID private key (RFC 8292), base64url of the 32-byte P-256 scalar.
    /// Unset: the first node to start makes one and keeps it in the database, where every
    /// node reads it. Changing it invalidates every device's push subscription.
    #[arg(long, env = "DUET_VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub vapid_private_key: Option<String>,

    /// Who push services contact about this deployment's pushes (the VAPID `sub`): a
    /// `mailto:` or `https:` URL. Set it to the operator's address.
    #[arg(
        long,
        env = "DUET_VAPID_SUBJECT",
        default_value = "mailto:operator@duet.invalid"
    )]
    pub vapid_subject: String,

    /// Pushes waiting to leave this node; beyond, new ones are dropped and counted as failed
    /// (a dead push service never holds up a commit).
    #[arg(long, env = "DUET_PUSH_QUEUE", default_value_t = 4096)]
    pub push_queue: usize,

    /// Pushes under way on this node at once: each delivery to one device, with its retries
    /// (a device has one at a time; a push that finds it busy skips it), and each lookup of a
    /// user's devices. Beyond, a push is dropped and counted as failed.
    #[arg(long, env = "DUET_PUSH_IN_FLIGHT", default_value_t = 512)]
    pub push_in_flight: usize,

    /// Milliseconds a push service has to answer one request before it counts as failed
    /// (and is retried).
    #[arg(long, env = "DUET_PUSH_TIMEOUT_MS", default_value_t = 10_000)]
    pub push_timeout_ms: u64,

    /// Times a push answered with 429, 5xx or nothing is tried again (backoff 1 s, 2 s,
    /// 4 s ..., or the service's `Retry-After` up to 60 s) before it is given up.
    #[arg(long, env = "DUET_PUSH_RETRIES", default_value_t = 3)]
    pub push_retries: u32,

    /// Milliseconds after a push to a user during which further events for them wait and
    /// leave together as one push that says how many.
    #[arg(long, env = "DUET_PUSH_COLLAPSE_MS", default_value_t = 1000)]
    pub push_collapse_ms: u64,

    /// Seconds a push service keeps a push for a device that is offline (the `TTL` header).
    #[arg(long, env = "DUET_PUSH_TTL_SECS", default_value_t = 12 * 60 * 60)]
    pub push_ttl_secs: u64,

    /// Devices one user may have subscribed to pushes; more get 422 `invalid_input`.
    #[arg(long, env = "DUET_MAX_PUSH_DEVICES", default_value_t = 10)]
    pub max_push_devices: u64,

    /// Accept `http://` push endpoints, and endpoints on this machine or a private network (a
    /// push service beside the node, as in the tests). Off: only `https://`, as browsers' push
    /// services are, and only to public addresses.
    #[arg(long, env = "DUET_PUSH_ALLOW_HTTP", default_value_t = false)]
    pub push_allow_http: bool,

    /// `tracing` filter, e.g. `info` or `duet=debug,info`.
    #[arg(long, env = "DUET_LOG", default_value = "info")]
    pub log: String,

    /// `text` or `json` (one JSON object per line).
    #[arg(long, env = "DUET_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl Config {
    /// The metrics listener's address; `None` for `off`.
    pub(crate) fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        if self.metrics_bind.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let addr: SocketAddr = self.metrics_bind.parse().map_err(|_| {
            anyhow::anyhow!(
                "DUET_METRICS_BIND must be an address like 127.0.0.1:9464, or off, not {:?}",
                self.metrics_bind
            )
        })?;
        if addr.port() != 0 && addr.port() == self.bind.port() {
            anyhow::bail!(
                "DUET_METRICS_BIND must not be the API's port {}: metrics are not for the public",
                self.bind.port()
            );
        }
        Ok(Some(addr))
    }

    pub(crate) fn presence_ttl(&self) -> Duration {
        Duration::from_secs(self.presence_ttl_secs.max(3))
    }

    pub(crate) fn breakup_grace(&self) -> Duration {
        Duration::from_secs(self.breakup_grace_secs)
    }

    pub(crate) fn files_dir(&self) -> PathBuf {
        self.files_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("files"))
    }

    pub(crate) fn orphan_age(&self) -> Duration {
        Duration::from_secs(self.orphan_age_secs)
    }

    pub(crate) fn sweep_period(&self) -> Duration {
        Duration::from_secs(self.sweep_secs.max(1))
    }

    pub(crate) fn search_merge_period(&self) -> Option<Duration> {
        (self.search_merge_ms > 0).then(|| Duration::from_millis(self.search_merge_ms))
    }

    pub(crate) fn catalogue_refresh(&self) -> Duration {
        Duration::from_secs(self.catalogue_refresh_secs.max(1))
    }

    pub(crate) fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_hours * 3600)
    }

    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_secs.max(1))
    }

    pub(crate) fn socket_write_timeout(&self) -> Duration {
        Duration::from_millis(self.socket_write_timeout_ms.max(1))
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    pub(crate) fn commit_window(&self) -> Duration {
        Duration::from_micros(self.commit_window_us)
    }

    pub(crate) fn db_probe(&self) -> Duration {
        Duration::from_millis(self.db_probe_ms.max(10))
    }

    pub(crate) fn db_timeout(&self) -> Duration {
        Duration::from_millis(self.db_timeout_ms.max(1))
    }

    pub(crate) fn push_timeout(&self) -> Duration {
        Duration::from_millis(self.push_timeout_ms.max(1))
    }

    pub(crate) fn push_collapse(&self) -> Duration {
        Duration::from_millis(self.push_collapse_ms)
    }

    pub(crate) fn standby_wait(&self) -> Duration {
        Duration::from_millis(self.standby_wait_ms)
    }

    pub(crate) fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms.max(1))
    }

    /// The Redis the bus runs on; `None` for one process with the in-process bus.
    pub(crate) fn redis_target(&self) -> Option<RedisTarget> {
        match (&self.redis_url, self.redis_cluster_urls.is_empty()) {
            (Some(url), _) => Some(RedisTarget::Single(url.clone())),
            (None, false) => Some(RedisTarget::Cluster(self.redis_cluster_urls.clone())),
            (None, true) => None,
        }
    }

    pub(crate) fn drain_delay(&self) -> Duration {
        let default = if self.redis_target().is_some() { 5 } else { 0 };
        Duration::from_secs(self.drain_delay_secs.unwrap_or(default))
    }

    pub(crate) fn drain_time(&self) -> Duration {
        Duration::from_secs(self.drain_secs)
    }

    pub(crate) fn hash_concurrency(&self) -> usize {
        self.hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    pub(crate) fn hash_wait(&self) -> Duration {
        Duration::from_millis(self.hash_wait_ms)
    }

    /// The configured origins, or the defaults derived from the address actually bound
    /// (which matters when `bind` asked for port 0).
    pub(crate) fn allowed_origins(&self, bound: SocketAddr) -> Vec<String> {
        if !self.origins.is_empty() {
            return self
                .origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect();
        }
        let port = bound.port();
        vec![
            format!("http://{bound}"),
            format!("http://localhost:{port}"),
            format!("http://127.0.0.1:{port}"),
        ]
    }
}

/// A couple's default time zone, by its IANA name (`Asia/Seoul`).
fn parse_time_zone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IANA time zone such as Asia/Seoul"))
}

/// A trusted proxy: a CIDR range (`10.0.0.0/8`) or one address (`127.0.0.1`).
fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR range"))
}

/// Which Redis the bus talks to.
pub enum RedisTarget {
    /// One server (`REDIS_URL`).
    Single(String),
    /// A Redis Cluster, by some of its nodes (`REDIS_CLUSTER_URLS`).
    Cluster(Vec<String>),
}
