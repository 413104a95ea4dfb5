//! Who is asking, as far as the node can tell: the address login limits count against. It is
//! the TCP peer, unless the peer is one of our own proxies (`DUET_TRUSTED_PROXIES`); then it is
//! the address the proxies recorded in `X-Forwarded-For`. Each proxy appends the address it
//! got the request from, so the list is read from the right, and the first address that is not
//! one of ours is the client: everything to its left, the client may have written itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::error::Error;
use crate::state::AppState;

/// The client's address (see the module's comment).
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // Served without connect info (a router mounted elsewhere), every client is one.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientAddr(client_addr(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip.to_canonical()));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    // Several header lines are one list, in order.
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(line) = line.to_str() else {
            return client;
        };
        for hop in line.rsplit(',') {
            // Garbage can only come from the client's side: stop at the last address we trust.
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip;
            if !is_trusted(ip) {
                return client;
            }
        }
    }
    client
}

/// `203.0.113.7`, `2001:db8::1`, or either with a port (`[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn addr(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for line in forwarded {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_addr(peer.parse().unwrap(), &headers, &trusted).to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(addr("198.51.100.9", &["203.0.113.7"], &[]), "198.51.100.9");
        assert_eq!(
            addr("198.51.100.9", &["203.0.113.7"], &["10.0.0.0/8"]),
            "198.51.100.9"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_last_untrusted_hop_is_the_client() {
        let proxies = ["10.0.0.0/8", "127.0.0.1/32"];
        assert_eq!(addr("127.0.0.1", &["203.0.113.7"], &proxies), "203.0.113.7");
        // A client that forges the header only adds to its left.
        assert_eq!(
            addr("127.0.0.1", &["1.2.3.4, 203.0.113.7, 10.0.0.5"], &proxies),
            "203.0.113.7"
        );
        assert_eq!(
            addr(
                "127.0.0.1",
                &["1.2.3.4", "203.0.113.7", "10.0.0.5"],
                &proxies
            ),
            "203.0.113.7"
        );
        assert_eq!(
            addr("127.0.0.1", &["[2001:db8::1]:443"], &proxies),
            "2001:db8::1"
        );
        // No header, or only our own proxies in it: the last proxy we know of.
        assert_eq!(addr("127.0.0.1", &[], &proxies), "127.0.0.1");
        assert_eq!(addr("127.0.0.1", &["10.0.0.5"], &proxies), "10.0.0.5");
        // Garbage stops the walk at the last trustworthy hop.
        assert_eq!(
            addr("127.0.0.1", &["203.0.113.7, nonsense, 10.0.0.5"], &proxies),
            "10.0.0.5"
        );
    }
}
