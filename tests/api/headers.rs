//! What the browser is told about the app: run only the app's own scripts and styles, never
//! inside another site's frame, and send no referrer to other sites. The headers are on
//! every response, the page and the API's errors alike.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_forbids_inline_script_framing_and_referrers() {
    let node = spawn_node(Backend::Sqlite).await;
    for path in ["/", "/app.js", "/api/me", "/no-such-page"] {
        let url = format!("{}{path}", node.base());
        let (status, _, headers) = request(reqwest::Method::GET, &url, None, None).await;
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path} ({status}) has no {name}"))
                .to_owned()
        };
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self';",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: nothing unsafe in {csp}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
}

/// The policy allows no inline script or style, so the page must have none: every script is
/// a file, no element has an event-handler or style attribute, there is no `<style>`
/// element and no `data:` URL. (The browser suite fails on any CSP violation the running
/// app causes.)
#[test]
fn the_client_page_has_no_inline_script_or_style() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/index.html"))
        .expect("assets/index.html");
    let lower = page.to_lowercase();
    for (at, _) in lower.match_indices("<script") {
        let tag_end = lower[at..].find('>').map_or(lower.len(), |e| at + e);
        assert!(
            lower[at..tag_end].contains(" src="),
            "an inline script: {}",
            &page[at..tag_end]
        );
    }
    assert!(!lower.contains("<style"), "an inline <style> element");
    assert!(!lower.contains(" style="), "a style attribute");
    assert!(
        !lower.contains("data:"),
        "a data: URL (img-src does not allow them)"
    );
    let handler = event_handler_attribute(&lower);
    assert!(handler.is_none(), "an event-handler attribute: {handler:?}");
}

/// The first ` on...=` attribute inside a tag, if any (`onclick=`, `onload=`...).
fn event_handler_attribute(html: &str) -> Option<String> {
    let bytes = html.as_bytes();
    let mut in_tag = false;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'<' => in_tag = true,
            b'>' => in_tag = false,
            b' ' | b'\n' | b'\t' if in_tag && html[i + 1..].starts_with("on") => {
                let name: String = html[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                if name.len() > 2 && html[i + 1 + name.len()..].starts_with('=') {
                    return Some(name);
                }
            }
            _ => {}
        }
    }
    None
}
