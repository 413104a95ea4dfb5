//! `setup`: makes couples through the public API (sign up two users, one asks, the other
//! accepts) and writes their session tokens, one couple per line `"<token A> <token B>"`; and
//! reading that file back for every other mode. Signup hashes the password with Argon2 (tens
//! of ms of server CPU), so couples are made a bounded number at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::report::{Table, line, note, round1};

/// Times one sign-up is tried while the node answers 429 with `Retry-After` (raise
/// `DUET_LOGIN_RATE_PER_ADDR` on the node for big setups, or they crawl at its rate).
const SIGNUP_TRIES: u32 = 30;

/// Sign up and pair couples; write their tokens to a file.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The node to talk to, HOST:PORT (any node of a cluster: they share the database).
    #[arg(long)]
    addr: String,
    /// How many couples (2 users each) to make.
    #[arg(long)]
    couples: usize,
    /// Where to write the tokens, one couple per line: "<token A> <token B>".
    #[arg(long)]
    out: PathBuf,
    /// Start of every username (a random tag per run follows, so runs never collide).
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Couples being made at once (each signup costs the server an Argon2 hash).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

pub async fn run(args: Args) -> Result<bool> {
    if args.couples == 0 {
        bail!("--couples must be at least 1");
    }
    let tag = run_tag();
    // Usernames are `<prefix><tag><a|b><i>`: at most 32 characters of letters, digits, `_.-`.
    let longest = args.prefix.len() + tag.len() + 1 + (args.couples - 1).to_string().len();
    if longest > 32
        || !args
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        bail!(
            "--prefix {:?} must be ASCII letters, digits, _ . - and short enough that usernames \
             stay within 32 characters",
            args.prefix
        );
    }
    let base = format!("http://{}", args.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    // Fail fast and clearly when the node is not there, before hundreds of tasks do.
    http.get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| http_error(&base, e))?;

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..args.couples {
        let (http, base, gate) = (http.clone(), base.clone(), gate.clone());
        let names = (
            format!("{}{tag}a{i}", args.prefix),
            format!("{}{tag}b{i}", args.prefix),
        );
        let password = format!("pw-{tag}-{i}-load");
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let couple = make_couple(&http, &base, &names, &password).await;
            Ok::<_, anyhow::Error>((i, couple))
        });
    }

    let mut tokens: Vec<Option<(String, String)>> = vec![None; args.couples];
    let (mut failed, mut first_error) = (0usize, None::<String>);
    let mut done = 0usize;
    while let Some(joined) = tasks.join_next().await {
        let (i, couple) = joined??;
        match couple {
            Ok(pair) => tokens[i] = Some(pair),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        done += 1;
        if args.couples >= 100 && done.is_multiple_of(args.couples / 10) {
            note(format!("setup: {done}/{} couples", args.couples));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let made: Vec<&(String, String)> = tokens.iter().flatten().collect();
    let text: String = made.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    std::fs::write(&args.out, text)
        .with_context(|| format!("cannot write {}", args.out.display()))?;

    line(
        "setup",
        json!({
            "addr": args.addr,
            "couples": made.len(),
            "requested": args.couples,
            "failed": failed,
            "first_error": first_error,
            "secs": round1(secs),
            "couples_per_s": round1(made.len() as f64 / secs.max(1e-9)),
            "out": args.out.display().to_string(),
            "username_prefix": format!("{}{tag}", args.prefix),
        }),
    );
    let mut table = Table::new("setup", &["couples", "failed", "secs", "couples/s", "out"]);
    table.row(vec![
        made.len().to_string(),
        failed.to_string(),
        format!("{secs:.1}"),
        format!("{:.1}", made.len() as f64 / secs.max(1e-9)),
        args.out.display().to_string(),
    ]);
    table.print();
    if let Some(e) = first_error {
        note(format!("{failed} couples failed; the first: {e}"));
    }
    Ok(failed == 0)
}

/// Six random base-36 characters: unique enough per run, short enough for usernames.
fn run_tag() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..6)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn make_couple(
    http: &reqwest::Client,
    base: &str,
    (name_a, name_b): &(String, String),
    password: &str,
) -> Result<(String, String)> {
    let (a, b) = tokio::try_join!(
        signup(http, base, name_a, password),
        signup(http, base, name_b, password)
    )?;
    let request: serde_json::Value = post(
        http,
        base,
        "/api/requests",
        &a,
        Some(json!({ "username": name_b })),
        201,
    )
    .await
    .context("pairing request")?;
    let id = request["request"]["id"]
        .as_str()
        .context("the pairing request's answer has no request.id")?;
    post(
        http,
        base,
        &format!("/api/requests/{id}/accept"),
        &b,
        None,
        201,
    )
    .await
    .context("accepting the pairing request")?;
    Ok((a, b))
}

/// Signs up and returns the session token from the `duet_session` cookie.
async fn signup(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> Result<String> {
    // A node hashes a bounded number of passwords at a time and limits sign-ups per address;
    // it says when to come back, and waiting that long beats failing the whole setup.
    let mut tries = 0;
    let response = loop {
        let response = http
            .post(format!("{base}/api/signup"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .map_err(|e| http_error(base, e))?;
        tries += 1;
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match retry_after {
            Some(secs) if response.status().as_u16() == 429 && tries < SIGNUP_TRIES => {
                tokio::time::sleep(Duration::from_secs(secs.clamp(1, 60))).await;
            }
            _ => break response,
        }
    };
    let status = response.status();
    let token = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|cookie| {
            let value = cookie.strip_prefix("duet_session=")?;
            Some(value.split(';').next().unwrap_or(value).to_owned())
        });
    if status.as_u16() != 201 {
        bail!(
            "signup of {username}: {}",
            error_text(status, response).await
        );
    }
    token
        .filter(|t| !t.is_empty())
        .with_context(|| format!("signup of {username}: 201 without a duet_session cookie"))
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
    expect: u16,
) -> Result<serde_json::Value> {
    let mut request = http.post(format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| http_error(base, e))?;
    let status = response.status();
    if status.as_u16() != expect {
        bail!("POST {path}: {}", error_text(status, response).await);
    }
    Ok(response.json().await.unwrap_or(serde_json::Value::Null))
}

/// "409 username_taken: ..." from the contract's error body, or the raw status.
async fn error_text(status: reqwest::StatusCode, response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    match (
        body["error"]["code"].as_str(),
        body["error"]["message"].as_str(),
    ) {
        (Some(code), Some(message)) => format!("{} {code}: {message}", status.as_u16()),
        _ => status.to_string(),
    }
}

fn http_error(base: &str, e: reqwest::Error) -> anyhow::Error {
    if e.is_connect() {
        anyhow::anyhow!("cannot connect to {base} (is the node running?)")
    } else if e.is_timeout() {
        anyhow::anyhow!("{base} did not answer in time")
    } else {
        anyhow::anyhow!("request to {base} failed: {e}")
    }
}

/// One couple of the tokens file.
#[derive(Clone, Debug)]
pub struct Couple {
    pub a: String,
    pub b: String,
}

/// Reads a tokens file written by `setup`; `want` couples from its start (all when None).
pub fn read_tokens(path: &Path, want: Option<usize>) -> Result<Vec<Couple>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
    let mut couples = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let mut words = l.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (None, ..) => continue,
            (Some(a), Some(b), None) => couples.push(Couple {
                a: a.to_owned(),
                b: b.to_owned(),
            }),
            _ => bail!(
                "{} line {}: expected \"<token A> <token B>\"",
                path.display(),
                n + 1
            ),
        }
    }
    match want {
        Some(n) if n > couples.len() => bail!(
            "{} holds {} couples, {n} wanted (make more with `duet-load setup`)",
            path.display(),
            couples.len()
        ),
        Some(0) => bail!("--couples must be at least 1"),
        Some(n) => couples.truncate(n),
        None if couples.is_empty() => bail!("{} holds no couples", path.display()),
        None => {}
    }
    Ok(couples)
}
