//! Who may connect, by address: allow and deny lists (CIDR blocks, IPv4 and IPv6) for all of
//! Portico and per app, and the proxies in front whose `X-Forwarded-For` is believed.

use ipnet::IpNet;
use std::net::IpAddr;

/// An allow list and a deny list. Deny wins; an empty allow list allows everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpRules {
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        !self.deny.iter().any(|net| net.contains(&ip))
            && (self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip)))
    }

    /// No rule at all (the request path skips the check).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// `[firewall]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallConfig {
    pub rules: IpRules,
    /// Load balancers or proxies in front of Portico: their `X-Forwarded-For` names the
    /// client. Anyone else's is ignored (a client could write anything there).
    pub trusted_proxies: Vec<IpNet>,
}

impl FirewallConfig {
    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy (entries to its left
    /// were written by whoever connected to the first proxy, so they prove nothing).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        if self.trusted_proxies.is_empty() || !self.trusted(peer) {
            return peer;
        }
        let mut client = peer;
        for value in forwarded_for.rev() {
            for entry in value.rsplit(',') {
                let Some(ip) = parse_forwarded(entry.trim()) else {
                    return client;
                };
                client = ip;
                if !self.trusted(ip) {
                    return client;
                }
            }
        }
        client
    }
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or `203.0.113.7:443`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// A CIDR block or a single address (a /32 or /128).
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| parse_net(n).unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn deny_wins_and_an_empty_allow_list_allows_everyone() {
        let rules = IpRules {
            allow: nets(&["10.0.0.0/8", "2001:db8::/32"]),
            deny: nets(&["10.0.0.66"]),
        };
        assert!(rules.permits(ip("10.1.2.3")));
        assert!(!rules.permits(ip("10.0.0.66")));
        assert!(!rules.permits(ip("192.0.2.1")));
        assert!(rules.permits(ip("2001:db8::1")));
        assert!(
            rules.permits(ip("::ffff:10.1.2.3")),
            "IPv4-mapped IPv6 is IPv4"
        );
        let deny_only = IpRules {
            allow: vec![],
            deny: nets(&["192.0.2.0/24"]),
        };
        assert!(deny_only.permits(ip("198.51.100.1")));
        assert!(!deny_only.permits(ip("192.0.2.9")));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies_and_only_up_to_them() {
        let firewall = FirewallConfig {
            rules: IpRules::default(),
            trusted_proxies: nets(&["10.0.0.0/24"]),
        };
        // An untrusted peer's header is ignored.
        assert_eq!(
            firewall.client_ip(ip("192.0.2.1"), ["198.51.100.7"].into_iter()),
            ip("192.0.2.1")
        );
        // Through two trusted proxies: the first untrusted hop from the right.
        assert_eq!(
            firewall.client_ip(
                ip("10.0.0.1"),
                ["6.6.6.6, 198.51.100.7", "10.0.0.2"].into_iter()
            ),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last address known to be real.
        assert_eq!(
            firewall.client_ip(ip("10.0.0.1"), ["nonsense"].into_iter()),
            ip("10.0.0.1")
        );
        assert_eq!(
            firewall.client_ip(ip("10.0.0.1"), ["[2001:db8::5]:443"].into_iter()),
            ip("2001:db8::5")
        );
    }
}
