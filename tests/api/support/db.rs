//! The test's own database: a temporary SQLite file or a fresh Postgres database, dropped
//! afterwards, and the macro that runs a test on both.

use super::*;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once on the embedded SQLite and once on Postgres:
/// `both_backends!(a_rule_of_the_product);` makes `a_rule_of_the_product::sqlite` and
/// `a_rule_of_the_product::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )*
    };
}

fn admin_url() -> String {
    std::env::var("DUET_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    pub url: String,
    postgres_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}/duet.db", dir.path().display()),
                postgres_name: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let name = format!("duet_test_{}", Uuid::new_v4().simple());
                let admin = Database::connect(admin_url()).await.unwrap_or_else(|e| {
                    panic!(
                        "Postgres is not reachable at {} ({e}). Start it with \
                         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
                         or point DUET_TEST_POSTGRES at a server where user postgres may create databases.",
                        admin_url()
                    )
                });
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("creating the test database");
                let base = admin_url();
                let server = base.rsplit_once('/').map_or(base.as_str(), |(s, _)| s);
                TestDb {
                    url: format!("{server}/{name}"),
                    postgres_name: Some(name),
                    _dir: dir,
                }
            }
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A database that lives on a server of the test's own (e.g. a private Postgres it will
    /// restart); it goes away with that server, so nothing is dropped here.
    pub fn existing(url: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
            postgres_name: None,
            _dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = Database::connect(admin_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
