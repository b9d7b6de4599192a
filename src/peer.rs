//! Who is asking: the peer address the brute-force defences count against.
//!
//! The address comes from the connection where the stack knows it, or from
//! a proxy header the deployment says it can trust, and from nothing else:
//! a header a client can write itself would let one client spend another's
//! budget (or escape its own). When the gate cannot find the peer, it
//! counts nothing per peer and says so once in the log.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use http::{HeaderMap, header::FORWARDED, request::Parts};

type FindFn = Arc<dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync>;

/// Where the gate finds a request's peer address, for the lockout and the
/// user-code limits ([`Builder::peer`](crate::Builder::peer)).
///
/// The default, [`connection`](Self::connection), reads the address the
/// server accepted the connection from: a [`SocketAddr`] in the request's
/// extensions (a hyper service inserts it; the `hyper` example shows how)
/// or, with the `axum` feature, axum's `ConnectInfo<SocketAddr>`
/// (`into_make_service_with_connect_info`).
///
/// Behind reverse proxies, the connection is the proxy's, and every client
/// would share one budget: name the header the proxies set and how many of
/// them are yours. The gate takes the address that many hops from the
/// right, the last one a proxy of yours wrote; anything further left was
/// written by the client and is ignored. A request whose header holds
/// fewer addresses than that did not come through your proxies, and has no
/// peer.
///
/// ```
/// use tokengate::peer::PeerSource;
///
/// // One load balancer in front of the gate, which appends to
/// // X-Forwarded-For.
/// let source = PeerSource::x_forwarded_for(1);
/// let request = http::Request::builder()
///     .header("x-forwarded-for", "10.9.9.9, 203.0.113.7")
///     .body(())
///     .unwrap();
/// let (parts, ()) = request.into_parts();
/// assert_eq!(source.find(&parts), Some("203.0.113.7".parse().unwrap()));
/// ```
#[derive(Clone)]
pub struct PeerSource(Source);

#[derive(Clone)]
enum Source {
    Connection,
    XForwardedFor(usize),
    Forwarded(usize),
    Custom(FindFn),
}

impl PeerSource {
    /// The address the connection came from (the default).
    pub fn connection() -> Self {
        Self(Source::Connection)
    }

    /// The address `trusted_hops` entries from the right of
    /// `X-Forwarded-For`, where `trusted_hops` is the number of proxies of
    /// yours that append to it (at least 1).
    pub fn x_forwarded_for(trusted_hops: usize) -> Self {
        Self(Source::XForwardedFor(trusted_hops.max(1)))
    }

    /// The `for=` address `trusted_hops` elements from the right of
    /// `Forwarded` (RFC 7239), where `trusted_hops` is the number of
    /// proxies of yours that append to it (at least 1). An obfuscated or
    /// `unknown` node there means no peer.
    pub fn forwarded(trusted_hops: usize) -> Self {
        Self(Source::Forwarded(trusted_hops.max(1)))
    }

    /// The application's own rule.
    pub fn custom(find: impl Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static) -> Self {
        Self(Source::Custom(Arc::new(find)))
    }

    /// The peer address of a request, if this source can tell it.
    pub fn find(&self, parts: &Parts) -> Option<IpAddr> {
        match &self.0 {
            Source::Connection => connection(parts),
            Source::XForwardedFor(hops) => nth_from_right(&parts.headers, "x-forwarded-for", *hops)
                .and_then(|entry| entry.parse::<IpAddr>().ok()),
            Source::Forwarded(hops) => {
                let element = nth_from_right(&parts.headers, FORWARDED.as_str(), *hops)?;
                forwarded_for(element)
            }
            Source::Custom(find) => find(parts),
        }
    }
}

impl Default for PeerSource {
    fn default() -> Self {
        Self::connection()
    }
}

impl fmt::Debug for PeerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Connection => f.write_str("PeerSource::connection()"),
            Source::XForwardedFor(hops) => write!(f, "PeerSource::x_forwarded_for({hops})"),
            Source::Forwarded(hops) => write!(f, "PeerSource::forwarded({hops})"),
            Source::Custom(_) => f.write_str("PeerSource::custom(..)"),
        }
    }
}

fn connection(parts: &Parts) -> Option<IpAddr> {
    if let Some(addr) = parts.extensions.get::<SocketAddr>() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(info) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0.ip());
    }
    None
}

/// The `hops`-th comma-separated entry from the right, over every line of
/// the header in order (a proxy may add a line instead of appending). Only
/// that entry must be text: what lies to its left was written by the client,
/// and a byte there that is not visible ASCII must not cost the request its
/// peer (nginx appends to the client's own line).
fn nth_from_right<'a>(headers: &'a HeaderMap, name: &str, hops: usize) -> Option<&'a str> {
    let mut entries: Vec<&[u8]> = Vec::new();
    for line in headers.get_all(name) {
        entries.extend(line.as_bytes().split(|byte| *byte == b','));
    }
    let index = entries.len().checked_sub(hops)?;
    let entry = std::str::from_utf8(entries.get(index)?).ok()?.trim();
    (!entry.is_empty()).then_some(entry)
}

/// The address of a `Forwarded` element's `for=` pair.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })?;
    let value = value.trim_matches('"');
    // `for="[2001:db8::1]:4711"`, `for=192.0.2.60:8080`, `for=192.0.2.60`,
    // and a bare IPv6 address some proxies write unbracketed.
    if let Ok(ip) = value.parse() {
        return Some(ip);
    }
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let host = value.split_once(':').map_or(value, |(host, _)| host);
    host.parse().ok()
}

/// The address a counter is kept under: an IPv4 address as itself (an
/// IPv4-mapped IPv6 address, or one translated by NAT64's well-known prefix
/// `64:ff9b::/96`, as its IPv4 address: every IPv4 user behind a translator
/// shares that /64), any other IPv6 address as its /64, since one
/// subscriber usually holds a whole /64 and could otherwise rotate through
/// addresses for a fresh budget each time.
pub(crate) fn bucket(ip: IpAddr) -> IpAddr {
    const NAT64: u128 = 0x0064_ff9b_u128 << 96;
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None if u128::from(v6) >> 32 == NAT64 >> 32 => {
                // The low 32 bits are the IPv4 address.
                IpAddr::V4(std::net::Ipv4Addr::from(u128::from(v6) as u32))
            }
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_connection_is_the_default_and_headers_are_not_trusted() {
        let mut with_headers = parts(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        assert_eq!(PeerSource::default().find(&with_headers), None);
        with_headers
            .extensions
            .insert(SocketAddr::from(([192, 0, 2, 9], 4711)));
        assert_eq!(PeerSource::default().find(&with_headers), ip("192.0.2.9"));
    }

    #[test]
    fn x_forwarded_for_counts_trusted_hops_from_the_right() {
        let request = parts(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(
            PeerSource::x_forwarded_for(1).find(&request),
            ip("10.0.0.2")
        );
        assert_eq!(
            PeerSource::x_forwarded_for(2).find(&request),
            ip("203.0.113.7")
        );
        assert_eq!(PeerSource::x_forwarded_for(3).find(&request), ip("6.6.6.6"));
        // Fewer entries than trusted proxies: not through our proxies.
        assert_eq!(PeerSource::x_forwarded_for(4).find(&request), None);
        // Zero hops would trust the client's own entry; it means one.
        assert_eq!(
            PeerSource::x_forwarded_for(0).find(&request),
            ip("10.0.0.2")
        );
        // What the client wrote left of the trusted entries may hold any
        // byte: the peer is still found.
        let mut dirty = parts(&[]);
        dirty.headers.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"6.6.6.\x80, 203.0.113.9").unwrap(),
        );
        assert_eq!(
            PeerSource::x_forwarded_for(1).find(&dirty),
            ip("203.0.113.9")
        );
        assert_eq!(PeerSource::x_forwarded_for(2).find(&dirty), None);
        let mut dirty = parts(&[]);
        dirty.headers.insert(
            "forwarded",
            http::HeaderValue::from_bytes(b"for=\xff, for=203.0.113.9").unwrap(),
        );
        assert_eq!(PeerSource::forwarded(1).find(&dirty), ip("203.0.113.9"));
        let garbage = parts(&[("x-forwarded-for", "1.2.3.4, not-an-ip")]);
        assert_eq!(PeerSource::x_forwarded_for(1).find(&garbage), None);
        assert_eq!(PeerSource::x_forwarded_for(1).find(&parts(&[])), None);
    }

    #[test]
    fn forwarded_reads_the_for_pair_of_the_trusted_element() {
        let request = parts(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, proto=http;For=192.0.2.60:8080"#,
        )]);
        assert_eq!(PeerSource::forwarded(1).find(&request), ip("192.0.2.60"));
        assert_eq!(
            PeerSource::forwarded(2).find(&request),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(PeerSource::forwarded(3).find(&request), ip("6.6.6.6"));
        let hidden = parts(&[("forwarded", "for=_hidden, for=unknown")]);
        assert_eq!(PeerSource::forwarded(1).find(&hidden), None);
        assert_eq!(PeerSource::forwarded(2).find(&hidden), None);
        let bare_v6 = parts(&[("forwarded", r#"for="2001:db8::7""#)]);
        assert_eq!(PeerSource::forwarded(1).find(&bare_v6), ip("2001:db8::7"));
        let no_for = parts(&[("forwarded", "proto=https")]);
        assert_eq!(PeerSource::forwarded(1).find(&no_for), None);
    }

    #[test]
    fn custom_sources_decide_for_themselves() {
        let source =
            PeerSource::custom(|parts| parts.headers.get("x-peer")?.to_str().ok()?.parse().ok());
        assert_eq!(
            source.find(&parts(&[("x-peer", "192.0.2.1")])),
            ip("192.0.2.1")
        );
        assert_eq!(format!("{source:?}"), "PeerSource::custom(..)");
    }

    #[test]
    fn ipv6_peers_are_counted_by_their_64() {
        assert_eq!(
            bucket("2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            bucket("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        // NAT64's well-known prefix: one bucket per translated IPv4 user.
        assert_eq!(
            bucket("64:ff9b::c000:207".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_ne!(
            bucket("64:ff9b::c000:207".parse().unwrap()),
            bucket("64:ff9b::c000:208".parse().unwrap())
        );
        assert_eq!(
            bucket("192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
