//! LAN discovery over mDNS with real nodes, inside a network namespace each test creates for
//! itself, so that no multicast ever leaves for the machine's real interfaces.
//!
//! Each test re-runs its own test binary, filtered to itself, under `unshare --net` (as root)
//! or `unshare --user --map-root-user --net` (where unprivileged user namespaces are allowed).
//! Inside, the child checks that it sees no interface but `lo`, brings up `lo` and a veth pair
//! with one address per end (multicast-capable links), and runs the real test there. Without
//! a way to create the namespace the test prints why it is skipped; as root it fails instead,
//! because then it should always be able to run.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsString;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{builder, connected_to, eventually};
use dawn_crypto::{AeadSuite, SigningKey};
use dawn_identity::{KdfParams, SealOptions};
use dawn_node::{Config, DEFAULT_MDNS_SERVICE, MDNS_DIAL_DEFER, Node, NodeBuilder, NodeId};
use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};

/// Set in the child that runs inside the namespace.
const CHILD_ENV: &str = "DAWN_TEST_MDNS_NETNS";

/// Printed by the child once the test body has returned.
const DONE_MARKER: &str = "mdns netns test body finished:";

/// The addresses of the two ends of the veth pair inside the namespace.
const LINK_A: &str = "10.77.0.1";
const LINK_B: &str = "10.77.0.2";

/// Every discovery assertion waits at most this long.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(30);

fn any_v4() -> SocketAddr {
    "0.0.0.0:0".parse().unwrap()
}

/// A test node inside the namespace: all interfaces, ephemeral ports, no HTTP.
fn lan_node(dir: &Path, mdns: bool) -> NodeBuilder {
    builder(dir).listen(any_v4()).http(None).mdns(mdns)
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Inside the child: refuses to go on unless the namespace is fresh, then makes the links.
fn set_up_links() {
    let output = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(
        names,
        ["lo"],
        "not in a fresh network namespace; refusing to send multicast"
    );
    ip(&["link", "set", "lo", "up"]);
    ip(&[
        "link", "add", "dawn0", "type", "veth", "peer", "name", "dawn1",
    ]);
    ip(&["addr", "add", &format!("{LINK_A}/24"), "dev", "dawn0"]);
    ip(&["addr", "add", &format!("{LINK_B}/24"), "dev", "dawn1"]);
    ip(&["link", "set", "dawn0", "up"]);
    ip(&["link", "set", "dawn1", "up"]);
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The `unshare` arguments that create a network namespace here, or why none does.
fn unshare_args() -> Result<&'static [&'static str], String> {
    let candidates: [&'static [&'static str]; 2] =
        [&["--net"], &["--user", "--map-root-user", "--net"]];
    let mut reasons = Vec::new();
    for args in candidates {
        let probe = Command::new("unshare")
            .args(args)
            .args(["ip", "link", "show"])
            .stdin(Stdio::null())
            .output();
        match probe {
            Ok(output) if output.status.success() => return Ok(args),
            Ok(output) => reasons.push(format!(
                "`unshare {} ip link show` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(error) => reasons.push(format!("cannot run unshare: {error}")),
        }
    }
    Err(reasons.join("; "))
}

/// Runs `body` inside a new network namespace: in the child, runs it; in the parent, re-runs
/// the test binary filtered to `test` in the namespace and checks that the test ran and passed.
fn in_netns<F, Fut>(test: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var_os(CHILD_ENV).is_some() {
        set_up_links();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(body());
        println!("{DONE_MARKER} {test}");
        return;
    }
    let args = match unshare_args() {
        Ok(args) => args,
        Err(reason) if running_as_root() => {
            panic!("running as root, yet no network namespace can be created: {reason}")
        }
        Err(reason) => {
            // Straight to stderr, past the test harness's capture, so the skip is seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: cannot create a network namespace for the mDNS test ({reason})"
            );
            return;
        }
    };
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let output = Command::new("unshare")
        .args(args)
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "--- {test} in a network namespace (unshare {}), {:?} ---\n{stdout}{stderr}",
        args.join(" "),
        started.elapsed()
    );
    assert!(output.status.success(), "the namespaced test failed");
    // A filter that matched nothing would pass too: make sure the test itself ran.
    assert!(
        stdout.contains(&format!("{DONE_MARKER} {test}")) && stdout.contains("1 passed"),
        "the namespaced run did not run {test}"
    );
}

fn random_id() -> NodeId {
    SigningKey::generate().unwrap().verifying_key().into()
}

fn lists(node: &Node, peer: &NodeId) -> bool {
    node.peers().iter().any(|p| p.node_id == *peer)
}

#[test]
fn two_nodes_find_each_other_on_the_lan() {
    in_netns("two_nodes_find_each_other_on_the_lan", || async {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let started = Instant::now();
        let a = lan_node(dir_a.path(), true).start().await.unwrap();
        let b = lan_node(dir_b.path(), true).start().await.unwrap();
        assert!(a.mdns_stats().is_some() && b.mdns_stats().is_some());
        assert!(a.peers().is_empty() && b.peers().is_empty(), "no bootstrap");

        let took = eventually(DISCOVERY_LIMIT, "A and B connect over mDNS", || {
            connected_to(&a, &b) && connected_to(&b, &a)
        })
        .await;
        println!(
            "discovered and connected in {took:?} ({:?} after the first start)",
            started.elapsed()
        );
        assert!(a.status().peer_count >= 1 && b.status().peer_count >= 1);
        // The side that was dialled may resolve the other's advertisement a little later.
        eventually(DISCOVERY_LIMIT, "A and B each track the other", || {
            let (a, b) = (a.mdns_stats().unwrap(), b.mdns_stats().unwrap());
            a.tracked == 1 && b.tracked == 1
        })
        .await;
        let (stats_a, stats_b) = (a.mdns_stats().unwrap(), b.mdns_stats().unwrap());
        println!("A: {stats_a:?}\nB: {stats_b:?}");
        assert!(stats_a.resolved >= 1 && stats_b.resolved >= 1);
        assert!(stats_a.dials + stats_b.dials >= 1);
        assert_eq!(stats_a.ignored + stats_b.ignored, 0);
        // The peer is recorded at a LAN address, never a loopback one.
        let peer = a
            .peers()
            .into_iter()
            .find(|p| p.node_id == b.node_id())
            .unwrap();
        assert!(
            peer.addresses.iter().all(|addr| !addr.ip().is_loopback()),
            "{peer:?}"
        );

        // The connection is a full peer: gossip runs over it.
        let mut deliveries = b.subscribe("dawn/lan").await.unwrap();
        eventually(DISCOVERY_LIMIT, "A and B become gossip neighbours", || {
            a.gossip_views().0.contains(&b.node_id())
        })
        .await;
        a.broadcast("dawn/lan", &b"found you"[..]).await.unwrap();
        let delivery = tokio::time::timeout(DISCOVERY_LIMIT, deliveries.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&delivery.payload[..], b"found you");
        assert_eq!(delivery.origin, a.node_id());

        // A's goodbye makes B forget it at once, not when the record expires (minutes).
        let stopping = Instant::now();
        a.shutdown().await.unwrap();
        println!("A shut down in {:?}", stopping.elapsed());
        let took = eventually(Duration::from_secs(10), "B hears A's goodbye", || {
            let stats = b.mdns_stats().unwrap();
            stats.removed >= 1 && stats.tracked == 0
        })
        .await;
        println!("B forgot A {took:?} after its shutdown");
        b.shutdown().await.unwrap();
    });
}

#[test]
fn mdns_off_means_no_discovery() {
    in_netns("mdns_off_means_no_discovery", || async {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        // C comes from a config file that turns discovery on, overridden by the environment.
        let mut config = Config::from_toml_str(
            &format!(
                "[node]\ndata_dir = {:?}\nlisten = \"0.0.0.0:0\"\n[discovery]\nmdns = true\n",
                dirs[2].path().display().to_string()
            ),
            None,
        )
        .unwrap();
        assert!(config.discovery.mdns);
        config
            .apply_env([(
                OsString::from("DAWN_DISCOVERY_MDNS"),
                OsString::from("false"),
            )])
            .unwrap();
        assert!(!config.discovery.mdns);
        let c = NodeBuilder::from_config(&config)
            .unwrap()
            .http(None)
            .development_mode(true)
            .seal_options(SealOptions::new(
                KdfParams::insecure_fast(),
                AeadSuite::default(),
            ))
            .start()
            .await
            .unwrap();
        assert!(c.mdns_stats().is_none(), "discovery is off");
        // A builder leaves discovery off unless asked.
        let d = builder(dirs[1].path())
            .listen(any_v4())
            .http(None)
            .start()
            .await
            .unwrap();
        assert!(d.mdns_stats().is_none(), "off by default in a builder");
        d.shutdown().await.unwrap();

        // Two nodes with discovery on find each other, but not C.
        let a = lan_node(dirs[0].path(), true).start().await.unwrap();
        let b_dir = tempfile::tempdir().unwrap();
        let b = lan_node(b_dir.path(), true).start().await.unwrap();
        eventually(DISCOVERY_LIMIT, "A and B connect over mDNS", || {
            connected_to(&a, &b) && connected_to(&b, &a)
        })
        .await;
        // Longer than a deferred first dial and several announcement rounds.
        tokio::time::sleep(MDNS_DIAL_DEFER * 2).await;
        assert!(c.peers().is_empty(), "C found nobody: {:?}", c.peers());
        assert!(!lists(&a, &c.node_id()) && !lists(&b, &c.node_id()));
        assert_eq!(c.status().peer_count, 0);
        let stats = a.mdns_stats().unwrap();
        assert_eq!(stats.tracked, 1, "A tracks B only: {stats:?}");

        for node in [a, b, c] {
            node.shutdown().await.unwrap();
        }
    });
}

#[test]
fn spoofed_and_malformed_adverts_are_not_believed() {
    in_netns("spoofed_and_malformed_adverts_are_not_believed", || async {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = lan_node(dir_a.path(), true).start().await.unwrap();
        // B does not advertise; the spoofer points at its port, claiming another identity.
        let b = lan_node(dir_b.path(), false).start().await.unwrap();
        let claimed = random_id();

        let spoofer = ServiceDaemon::new().unwrap();
        spoofer
            .disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6, IfKind::IPv6])
            .unwrap();
        let claimed_text = claimed.to_string();
        let port = b.quic_addr().port();
        let adverts: [(&str, Vec<(&str, &str)>); 4] = [
            ("spoof", vec![("id", &claimed_text), ("v", "1")]),
            ("junk-id", vec![("id", "not-a-node-id"), ("v", "1")]),
            ("no-version", vec![("id", &claimed_text)]),
            ("bad-version", vec![("id", &claimed_text), ("v", "zero")]),
        ];
        for (name, properties) in &adverts {
            let info = ServiceInfo::new(
                DEFAULT_MDNS_SERVICE,
                name,
                &format!("{name}.local."),
                LINK_B,
                port,
                &properties[..],
            )
            .unwrap();
            spoofer.register(info).unwrap();
        }

        eventually(
            DISCOVERY_LIMIT,
            "A ignores the malformed adverts and fails the spoofed dial",
            || {
                let stats = a.mdns_stats().unwrap();
                stats.ignored >= 3 && stats.dial_failures >= 1
            },
        )
        .await;
        let stats = a.mdns_stats().unwrap();
        println!("A: {stats:?}");
        assert_eq!(
            stats.tracked, 1,
            "only the well-formed (spoofed) advert is tracked"
        );
        // B answered on that port, but could not prove the claimed id: nobody is a peer.
        assert!(!lists(&a, &claimed), "{:?}", a.peers());
        assert!(!connected_to(&a, &b));
        assert_eq!(a.status().peer_count, 0);
        assert_eq!(a.status().known_peer_count, 0, "hearsay is never stored");

        let _ = spoofer.shutdown();
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    });
}
