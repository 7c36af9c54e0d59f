//! Who sent a request: the connection's peer, or — when the peer is a proxy the
//! configuration trusts (the hospital's load balancer) — the address that proxy says it
//! forwarded for. Headers from any other peer are ignored: anyone can write them.
//!
//! `X-Forwarded-For` is read from the right (each proxy appends the address it
//! received from): trusted proxies are skipped, and the first address that is not one
//! is the client. A malformed entry ends the walk at the last proxy that was believed,
//! so a forged or garbled header can name no one but its sender.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The client's address as far as the server can tell, in every request's extensions
/// (absent only for requests that did not come over a socket, as in unit tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The proxies whose `X-Forwarded-For` is believed (`trusted_proxies`).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

/// A `trusted_proxies` entry that is neither an address nor a CIDR block.
#[derive(Debug, thiserror::Error)]
#[error("trusted proxy {0:?} is not an IP address or a CIDR block (e.g. 10.0.0.0/8)")]
pub struct BadProxy(String);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.5`) and blocks (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse<T: AsRef<str>>(entries: &[T]) -> Result<TrustedProxies, BadProxy> {
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadProxy(e.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies(nets.into()))
    }

    /// Whether no proxy is trusted (every client is its connection's peer).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` carrying `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        // Every X-Forwarded-For line, in order, as one list; walked from the right.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                break;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// Puts the request's [`ClientAddr`] in its extensions.
pub(crate) async fn resolve(
    State(trusted): State<TrustedProxies>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = trusted.client(peer.ip(), req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;
    use proptest::prelude::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", l.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_writes() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("203.0.113.9"), &headers(&["10.9.9.9"])),
            ip("203.0.113.9")
        );
        let lb = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(
            lb.client(ip("192.168.1.20"), &headers(&["10.1.1.1"])),
            ip("192.168.1.20"),
            "not the load balancer: its header is not believed"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let lb = TrustedProxies::parse(&["10.0.0.0/8", "172.16.0.7"]).unwrap();
        // The phone claims to be 1.2.3.4; the load balancer saw 192.168.40.12.
        let h = headers(&["1.2.3.4, 192.168.40.12", "172.16.0.7"]);
        assert_eq!(lb.client(ip("10.0.0.2"), &h), ip("192.168.40.12"));
        // Only proxies: the furthest one.
        assert_eq!(
            lb.client(ip("10.0.0.2"), &headers(&["10.5.5.5"])),
            ip("10.5.5.5")
        );
        // No header: the proxy itself.
        assert_eq!(lb.client(ip("10.0.0.2"), &headers(&[])), ip("10.0.0.2"));
        // Garbage stops the walk at the last believed hop.
        assert_eq!(
            lb.client(ip("10.0.0.2"), &headers(&["8.8.8.8, unknown"])),
            ip("10.0.0.2")
        );
        // An IPv4 peer over an IPv6 socket is still the IPv4 proxy.
        assert_eq!(
            lb.client(ip("::ffff:10.0.0.2"), &headers(&["2001:db8::5"])),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn entries_are_addresses_or_blocks() {
        assert!(TrustedProxies::parse(&["10.0.0.1", "fd00::/8", " 192.168.0.0/16 "]).is_ok());
        let e = TrustedProxies::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
        assert!(TrustedProxies::parse(&["lb.stmary.example"]).is_err());
    }

    proptest! {
        /// Whatever the headers say, the client is the peer or an address in them, and
        /// never an address the peer did not put there unless the peer is trusted.
        #[test]
        fn the_client_is_the_peer_or_named_by_a_trusted_hop(
            peer in any::<[u8; 4]>(),
            hops in proptest::collection::vec(any::<[u8; 4]>(), 0..5),
            trusted_octet in any::<u8>(),
        ) {
            let peer = IpAddr::from(peer);
            let line = hops.iter().map(|h| IpAddr::from(*h).to_string()).collect::<Vec<_>>().join(", ");
            let h = if line.is_empty() { headers(&[]) } else { headers(&[&line]) };
            let trusted = TrustedProxies::parse(&[format!("{trusted_octet}.0.0.0/8")]).unwrap();
            let client = trusted.client(peer, &h);
            if trusted.trusts(peer) {
                prop_assert!(client == peer || hops.iter().any(|x| IpAddr::from(*x) == client));
            } else {
                prop_assert_eq!(client, peer);
            }
            prop_assert_eq!(TrustedProxies::default().client(peer, &h), peer);
        }
    }
}
