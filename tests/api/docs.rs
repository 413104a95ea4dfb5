//! The pages a newcomer and an operator read stay true to the code: the README opens with the
//! two commands, docs/CONFIGURATION.md lists exactly the settings a node has (read from the
//! clap definition itself, so a setting added without its row, or a row left behind by a
//! setting removed, fails here), and every relative link of README.md and docs/*.md reaches
//! an existing file and heading. The README was split into docs/ pages; this is what keeps the
//! split from rotting. And the two commands share one build: the test build turns on no
//! feature of a dependency that the plain build lacks, so `cargo run` after `cargo test`
//! starts at once instead of compiling some 60 crates again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Args;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The environment variable of every setting of a node.
fn settings() -> BTreeSet<String> {
    let command = duet::config::Config::augment_args(clap::Command::new("duet"));
    command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect()
}

/// The names in backticks in the first cell of each row of the reference's settings table.
fn documented_settings(reference: &str) -> BTreeSet<String> {
    reference
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| line.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned))
        .collect()
}

#[test]
fn the_readme_opens_with_the_two_commands() {
    let readme = read(&root().join("README.md"));
    let first: Vec<&str> = readme.lines().take(6).collect();
    assert_eq!(first[0], "# Duet", "{first:#?}");
    assert_eq!(first[2], "```sh", "{first:#?}");
    assert!(first[3].starts_with("cargo run "), "{first:#?}");
    assert!(first[4].starts_with("cargo test "), "{first:#?}");
    assert_eq!(first[5], "```", "{first:#?}");
}

/// Every package of a build as `name version [features]`, one line each (a package built with
/// two feature sets gives two lines).
fn built_with(edges: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(root())
        .args([
            "tree",
            "--locked",
            "--offline",
            "--no-dedupe",
            "--prefix",
            "none",
        ])
        .args(["-e", edges, "-f", "{p} [{f}]"])
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| line.replace(" (*)", ""))
        .collect()
}

#[test]
fn the_two_commands_share_one_build() {
    let run = built_with("normal,build");
    let test = built_with("normal,build,dev");
    assert!(run.iter().any(|p| p.starts_with("tokio ")), "{run:?}");
    // The test build may add packages (the dev-dependencies), never build one differently.
    let rebuilt: Vec<_> = run.difference(&test).collect();
    assert!(
        rebuilt.is_empty(),
        "`cargo test` builds these with other features than `cargo run` does, so each command \
         rebuilds them and all above them; turn the same features on in [dependencies]: {rebuilt:#?}"
    );
}

#[test]
fn the_configuration_reference_lists_exactly_the_settings_of_a_node() {
    let settings = settings();
    assert!(
        settings.contains("DATABASE_URL") && settings.contains("DUET_BIND"),
        "read no settings from the clap definition: {settings:?}"
    );
    let documented = documented_settings(&read(&root().join("docs/CONFIGURATION.md")));
    let missing: Vec<_> = settings.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&settings).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/CONFIGURATION.md's table lacks {missing:?} and lists {stale:?}, which no setting has"
    );
}

#[test]
fn the_readme_names_only_settings_a_node_has() {
    let settings = settings();
    let named = documented_settings(&read(&root().join("README.md")));
    assert!(named.contains("DATABASE_URL"), "{named:?}");
    let stale: Vec<_> = named.difference(&settings).collect();
    assert!(
        stale.is_empty(),
        "the README's settings table lists {stale:?}, which no setting has"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings, and its text outside fenced code.
fn parse(text: &str) -> (BTreeSet<String>, String) {
    let mut anchors = BTreeSet::new();
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if line.starts_with('#') {
            anchors.insert(anchor(line.trim_start_matches('#')));
        }
        prose.push_str(line);
        prose.push('\n');
    }
    (anchors, prose)
}

/// The targets of the `[text](target)` links of some prose.
fn links(prose: &str) -> Vec<String> {
    prose
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|target| !target.contains(char::is_whitespace))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_relative_link_of_the_readme_and_docs_reaches_a_file_and_a_heading() {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "md") {
            pages.push(path);
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let (_, prose) = parse(&read(page));
        for target in links(&prose) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            checked += 1;
            let (file, heading) = target.split_once('#').unwrap_or((&target, ""));
            let file = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !file.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
            } else if !heading.is_empty() {
                let (anchors, _) = parse(&read(&file));
                if !anchors.contains(heading) {
                    broken.push(format!("{}: {target} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "found only {checked} relative links: is the parser blind?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
