//! [`Net`]: a network namespace joined to this host by a veth pair on a private /30, for
//! partition tests. Cutting the link (`ip link set … down`) drops packets both ways while the
//! processes inside live on, so requests already sent are retransmitted and arrive when the
//! link comes back, as on a real network. Needs root and iproute2.

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// A network namespace linked to this host by a veth pair; removed when dropped.
#[derive(Debug)]
pub struct Net {
    ns: String,
    host_if: String,
    /// This host's end of the pair: where a server the namespace should reach listens.
    pub host_ip: String,
    /// The namespace's end.
    pub ns_ip: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Microseconds since the Unix epoch (the clock the workers' ledgers use).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Net {
    /// A namespace named after `id` (a [`crate::free_port`], so parallel tests never collide).
    pub fn new(id: u16) -> Net {
        // One /30 per id, within 10.100.0.0/14.
        let n = id as u32;
        let (b, c, d) = (100 + n / 16_384, n / 64 % 256, n % 64 * 4);
        let net = Net {
            ns: format!("celp{id}"),
            host_if: format!("cph{id}"),
            host_ip: format!("10.{b}.{c}.{}", d + 1),
            ns_ip: format!("10.{b}.{c}.{}", d + 2),
        };
        let peer = format!("cpn{id}");
        let added = {
            let _turn = netns_turn();
            ip(&["netns", "add", &net.ns])
        };
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &net.ns, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        let ok = added
            && ip(&[
                "link",
                "add",
                &net.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ])
            && ip(&["link", "set", &peer, "netns", &net.ns])
            && ip(&[
                "addr",
                "add",
                &format!("{}/30", net.host_ip),
                "dev",
                &net.host_if,
            ])
            && ip(&["link", "set", &net.host_if, "up"])
            && in_ns(&["addr", "add", &format!("{}/30", net.ns_ip), "dev", &peer])
            && in_ns(&["link", "set", &peer, "up"])
            && in_ns(&["link", "set", "lo", "up"]);
        assert!(
            ok,
            "could not build a network namespace with a veth pair: the partition tests need root and iproute2 (ip netns, veth)"
        );
        net
    }

    /// The prefix that runs a command inside the namespace.
    pub fn exec(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.ns]
    }

    /// Drop every packet between the namespace and this host; returns when (µs since the
    /// epoch).
    pub fn cut(&self) -> u64 {
        assert!(ip(&["link", "set", &self.host_if, "down"]), "link down");
        now_us()
    }

    /// Let packets through again; returns when (µs since the epoch): the time the command was
    /// started, since the link may be up before `ip` returns (a process start can take tens of
    /// milliseconds on a loaded machine), and nothing may count as "during the cut" after it.
    pub fn heal(&self) -> u64 {
        let at = now_us();
        assert!(ip(&["link", "set", &self.host_if, "up"]), "link up");
        at
    }

    /// Destroy this host's side of every TCP connection with the namespace (`ss -K`), as when
    /// a server's TCP gives up or a NAT forgets the flow; the far side is not told.
    pub fn destroy_server_side(&self) {
        let ok = Command::new("ss")
            .args(["-K", "dst", &self.ns_ip])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "ss -K failed (the kernel needs CONFIG_INET_DIAG_DESTROY)"
        );
    }
}

/// `ip netns add` and `del` run by parallel test processes race on the mount of /run/netns:
/// they take turns, each holding this lock file while it runs (released when dropped).
fn netns_turn() -> std::fs::File {
    let lock = std::fs::File::create(std::env::temp_dir().join("celeriac-netns.lock"))
        .expect("create the namespace lock file");
    lock.lock().expect("lock the namespace lock file");
    lock
}

impl Drop for Net {
    fn drop(&mut self) {
        let _turn = netns_turn();
        ip(&["netns", "del", &self.ns]);
        ip(&["link", "del", &self.host_if]);
    }
}
