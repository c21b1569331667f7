//! The SSRF guard: a URL from a user (a friend link, a webhook) must not make the worker fetch
//! an internal service.
//!
//! Every host is resolved here, before any connection: addresses that are not global
//! (loopback, RFC 1918, link-local including 169.254.169.254, CGNAT, ULA, multicast,
//! unspecified, documentation, IPv4-mapped forms of these, …) are dropped, and the HTTP
//! client dials only the addresses that passed — it resolves through [`Guard`] as its
//! resolver, which answers from the same validated set, so a DNS answer cannot change between
//! the check and the dial. A literal IP in a URL is checked the same way. Every redirect hop
//! goes through the guard again.
//!
//! `allow_private` (a domain's `allow_private_networks` setting) lifts the non-global rule
//! (multicast, broadcast and unspecified addresses stay refused); `allowed` networks
//! (`allowed_networks`) are opened one by one.

use crate::Network;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Why a host cannot be fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// The name did not resolve.
    Dns(String),
    /// Every address is refused by the guard.
    Blocked(String),
}

impl std::fmt::Display for GuardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardError::Dns(m) | GuardError::Blocked(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for GuardError {}

/// Which addresses outbound requests may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Let requests reach loopback, private (RFC 1918, ULA), link-local and CGNAT addresses.
    pub allow_private: bool,
    /// Networks reachable even when `allow_private` is off.
    pub allowed: Vec<Network>,
    /// The settings section that holds this policy (`"links"`), named in refusals so an
    /// operator knows what to change.
    pub section: &'static str,
}

/// The address policy and the hosts resolved (and validated) so far.
#[derive(Debug)]
pub struct Guard {
    policy: AddressPolicy,
    resolved: Mutex<HashMap<String, Arc<[IpAddr]>>>,
}

impl Guard {
    /// A guard with the given policy.
    pub fn new(policy: AddressPolicy) -> Self {
        Guard {
            policy,
            resolved: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may be dialled.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.policy.allowed.iter().any(|n| n.contains(ip)) {
            return true;
        }
        match classify(ip) {
            Class::Global => true,
            Class::Private => self.policy.allow_private,
            Class::Never => false,
        }
    }

    fn how_to_allow(&self) -> String {
        format!(
            "set [{}] allow_private_networks or allowed_networks to reach it",
            self.policy.section
        )
    }

    /// Resolve `host` (a name or a literal address) and keep the permitted addresses; the
    /// HTTP client will dial only those.
    pub async fn check_host(&self, host: &str) -> Result<Arc<[IpAddr]>, GuardError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return if self.permits(ip) {
                Ok(Arc::from(vec![ip]))
            } else {
                Err(GuardError::Blocked(format!(
                    "{ip} is not a public address ({})",
                    self.how_to_allow()
                )))
            };
        }
        if let Some(ips) = self.resolved.lock().ok().and_then(|m| m.get(host).cloned()) {
            return Ok(ips);
        }
        let found: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| GuardError::Dns(format!("cannot resolve {host}: {e}")))?
            .map(|a| a.ip())
            .collect();
        if found.is_empty() {
            return Err(GuardError::Dns(format!("{host} has no addresses")));
        }
        let kept: Vec<IpAddr> = found
            .iter()
            .copied()
            .filter(|ip| self.permits(*ip))
            .collect();
        if kept.is_empty() {
            return Err(GuardError::Blocked(format!(
                "{host} resolves only to addresses that are not public ({}); {}",
                found
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                self.how_to_allow()
            )));
        }
        let kept: Arc<[IpAddr]> = Arc::from(kept);
        if let Ok(mut m) = self.resolved.lock() {
            m.insert(host.to_string(), kept.clone());
        }
        Ok(kept)
    }
}

/// The HTTP client's resolver: the addresses the guard validated.
impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let cached = self
            .resolved
            .lock()
            .ok()
            .and_then(|m| m.get(&host).cloned());
        // Names are validated before each request, so the cache answers; a name that is not
        // there (never expected) is refused rather than resolved without the guard.
        Box::pin(async move {
            match cached {
                Some(ips) => {
                    let addrs: Vec<SocketAddr> =
                        ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
                    Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
                }
                None => Err(Box::new(GuardError::Blocked(format!(
                    "{host} was not validated by the address guard"
                )))
                    as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Class {
    /// Reachable on the public internet.
    Global,
    /// Internal (loopback, private, link-local, CGNAT, ULA, …): allowed only when configured.
    Private,
    /// Never a unicast destination (unspecified, multicast, broadcast).
    Never,
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || a == 0 {
        return Class::Never;
    }
    let private = ip.is_loopback()                     // 127/8
        || ip.is_private()                             // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()                          // 169.254/16 (cloud metadata)
        || (a == 100 && (64..128).contains(&b))        // 100.64/10 CGNAT
        || (a == 192 && b == 0 && c == 0)              // 192.0.0/24 IETF protocol assignments
        || ip.is_documentation()                       // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 198 && (18..20).contains(&b))         // 198.18/15 benchmarking
        || a >= 240; // 240/4 reserved
    if private {
        Class::Private
    } else {
        Class::Global
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if ip.is_unspecified() || ip.is_multicast() {
        return Class::Never;
    }
    let s = ip.segments();
    let private = ip.is_loopback()                     // ::1
        || (s[0] & 0xfe00) == 0xfc00                   // fc00::/7 ULA
        || (s[0] & 0xffc0) == 0xfe80                   // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0                   // fec0::/10 site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8)          // 2001:db8::/32 documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b)          // 64:ff9b::/96 NAT64 (embeds any v4)
        || (s[0] == 0x2002)                            // 6to4 (embeds any v4)
        || (s[0] == 0x2001 && s[1] == 0)               // Teredo
        || s[..6] == [0, 0, 0, 0, 0, 0]                // IPv4-compatible ::a.b.c.d (deprecated)
        || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0); // ::ffff:0:a.b.c.d (SIIT)
    if private {
        Class::Private
    } else {
        Class::Global
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_private: bool, allowed: Vec<Network>) -> AddressPolicy {
        AddressPolicy {
            allow_private,
            allowed,
            section: "test",
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_global_addresses_are_refused_by_default() {
        let g = Guard::new(policy(false, vec![]));
        for blocked in [
            "127.0.0.1",
            "127.8.9.1",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "::ffff:0:7f00:1",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(!g.permits(ip(blocked)), "{blocked} must be blocked");
        }
        for open in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(g.permits(ip(open)), "{open} must be allowed");
        }
    }

    #[test]
    fn allow_private_keeps_never_addresses_refused() {
        let g = Guard::new(policy(true, vec![]));
        assert!(g.permits(ip("127.0.0.1")));
        assert!(g.permits(ip("10.1.1.1")));
        assert!(g.permits(ip("fd00::1")));
        assert!(!g.permits(ip("0.0.0.0")));
        assert!(!g.permits(ip("224.0.0.1")));
        assert!(!g.permits(ip("ff02::1")));
    }

    #[test]
    fn allowed_networks_open_exactly_themselves() {
        let g = Guard::new(policy(false, vec!["127.0.0.1/32".parse().unwrap()]));
        assert!(g.permits(ip("127.0.0.1")));
        assert!(!g.permits(ip("127.0.0.2")));
        assert!(!g.permits(ip("169.254.169.254")));
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_blocked() {
        let g = Guard::new(policy(false, vec![]));
        match g.check_host("localhost").await {
            Err(GuardError::Blocked(m)) => {
                assert!(m.contains("localhost") && m.contains("[test]"), "{m}")
            }
            other => panic!("expected blocked, got {other:?}"),
        }
        assert!(matches!(
            g.check_host("[::1]").await,
            Err(GuardError::Blocked(_))
        ));
        assert!(matches!(
            g.check_host("no-such-host.invalid").await,
            Err(GuardError::Dns(_))
        ));
        let open = Guard::new(policy(true, vec![]));
        let ips = open.check_host("localhost").await.unwrap();
        assert!(ips.iter().all(|i| i.is_loopback()));
    }
}
