//! Push endpoints are URLs the clients give, and the node POSTs to them: a name must resolve
//! to an address on the internet, never to this machine or a private network (a client could
//! otherwise make the node call its neighbours). Addresses written out in an endpoint are
//! refused when the device subscribes (`device`); names are checked here, at every connect,
//! so a name that changes its answer later is caught too.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Resolves with the system's resolver, keeping only public addresses.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err("the push service's name resolves to no public address".into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Not loopback, private, link-local, shared (100.64/10), documentation, unspecified or
/// broadcast; for IPv6 not loopback, unique-local, link-local or an IPv4-mapped address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[tokio::test]
    async fn a_name_of_this_machine_resolves_to_nothing_usable() {
        let name = Name::from_str("localhost")
            .map_err(|_| "a name")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(PublicOnly.resolve(name).await.is_err());
    }

    #[test]
    fn only_internet_addresses_are_public() {
        for inside in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                !is_public(inside.parse().unwrap_or_else(|_| panic!("{inside}"))),
                "{inside}"
            );
        }
        for outside in ["8.8.8.8", "142.250.0.1", "2607:f8b0::1"] {
            assert!(
                is_public(outside.parse().unwrap_or_else(|_| panic!("{outside}"))),
                "{outside}"
            );
        }
    }
}
