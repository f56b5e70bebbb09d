use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn pod() -> SocketPolicy {
    SocketPolicy {
        pod_ips: vec!["10.244.1.7".parse().unwrap()],
        tcp_ports: [8080].into(),
        udp_ports: [5353].into(),
        ..SocketPolicy::default()
    }
}

#[test]
fn listens_only_on_pod_ip_and_declared_ports() {
    let p = pod();
    assert!(p.allows(addr("10.244.1.7:8080"), SocketAddrUse::TcpBind));
    assert!(p.allows(addr("10.244.1.7:8080"), SocketAddrUse::TcpListen));
    assert!(!p.allows(addr("10.244.1.7:9090"), SocketAddrUse::TcpBind));
    assert!(!p.allows(addr("0.0.0.0:8080"), SocketAddrUse::TcpBind));
    assert!(!p.allows(addr("10.244.1.8:8080"), SocketAddrUse::TcpBind));
    assert!(!p.allows(addr("127.0.0.1:8080"), SocketAddrUse::TcpBind));
    // UDP has its own ports.
    assert!(p.allows(addr("10.244.1.7:5353"), SocketAddrUse::UdpBind));
    assert!(!p.allows(addr("10.244.1.7:8080"), SocketAddrUse::UdpBind));
    // Mapped IPv6 form of the pod IP.
    assert!(p.allows(addr("[::ffff:10.244.1.7]:8080"), SocketAddrUse::TcpBind));
}

#[test]
fn ephemeral_ports_serve_clients_not_listeners() {
    let p = pod();
    assert!(p.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
    assert!(p.allows(addr("[::]:0"), SocketAddrUse::TcpBind));
    assert!(p.allows(addr("10.244.1.7:0"), SocketAddrUse::TcpBind));
    assert!(!p.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpListen));
    assert!(!p.allows(addr("192.168.0.1:0"), SocketAddrUse::TcpBind));
    let closed = SocketPolicy { outbound: Outbound::Only(Vec::new()), ..pod() };
    assert!(!closed.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
    assert!(closed.allows(addr("10.244.1.7:8080"), SocketAddrUse::TcpListen));
}

/// The node of these tests: 192.0.2.10 on its uplink, pods on another
/// interface (their addresses are not listed).
fn node(policy: NodePolicy) -> NodeNetwork {
    NodeNetwork::with_addresses(policy, ["192.0.2.10".parse().unwrap(), "2001:db8::10".parse().unwrap()])
}

fn guard(pod: SocketPolicy) -> Guard {
    Guard { pod, node: node(NodePolicy::default()) }
}

#[test]
fn by_default_guests_reach_everything_but_the_node() {
    let g = guard(pod());
    for allowed in ["10.96.0.10:53", "93.184.216.34:443", "10.244.1.9:8080", "10.244.1.7:8080", "[2001:db8::99]:80"] {
        assert!(g.allows(addr(allowed), SocketAddrUse::TcpConnect), "{allowed}");
        assert!(g.allows(addr(allowed), SocketAddrUse::UdpSend), "{allowed}");
    }
    for (refused, why) in [
        ("127.0.0.1:10250", Refusal::Loopback),
        ("127.0.0.53:53", Refusal::Loopback),
        ("[::1]:2379", Refusal::Loopback),
        ("0.0.0.0:2379", Refusal::Unspecified),
        ("0.1.2.3:80", Refusal::Unspecified),
        ("[::]:2379", Refusal::Unspecified),
        ("169.254.169.254:80", Refusal::LinkLocal),
        ("169.254.77.1:80", Refusal::LinkLocal),
        ("[fe80::1]:80", Refusal::LinkLocal),
        ("[febf::1]:80", Refusal::LinkLocal),
        ("100.100.100.200:80", Refusal::Metadata),
        ("168.63.129.16:80", Refusal::Metadata),
        ("[fd00:ec2::254]:80", Refusal::Metadata),
        ("192.0.2.10:10250", Refusal::NodeAddress),
        ("[2001:db8::10]:10250", Refusal::NodeAddress),
    ] {
        assert_eq!(g.connect_denied(addr(refused).ip()), Some(Denied::Node(why)), "{refused}");
        assert!(!g.allows(addr(refused), SocketAddrUse::TcpConnect), "{refused}");
        assert!(!g.allows(addr(refused), SocketAddrUse::UdpSend), "{refused}");
    }
    // Accepting is always allowed: the listening side was checked.
    assert!(g.allows(addr("127.0.0.1:1"), SocketAddrUse::TcpAccept));
}

#[test]
fn ipv6_forms_of_node_local_ipv4_are_refused() {
    let g = guard(pod());
    for refused in [
        "[::ffff:127.0.0.1]:2379",
        "[::ffff:7f00:1]:2379",
        "[::ffff:169.254.169.254]:80",
        "[::ffff:192.0.2.10]:10250",
        "[::ffff:0.0.0.0]:80",
        "[::127.0.0.1]:2379",
        "[::169.254.169.254]:80",
        "[64:ff9b::127.0.0.1]:2379",
        "[64:ff9b::192.0.2.10]:10250",
    ] {
        assert!(!g.allows(addr(refused), SocketAddrUse::TcpConnect), "{refused}");
    }
    assert!(g.allows(addr("[::ffff:10.244.1.9]:8080"), SocketAddrUse::TcpConnect));
    assert!(g.allows(addr("[64:ff9b::93.184.216.34]:443"), SocketAddrUse::TcpConnect));
}

#[test]
fn annotations_narrow_but_never_widen() {
    let nets = ["10.0.0.0/8", "127.0.0.1/32", "169.254.0.0/16", "192.0.2.10/32", "::1/128"];
    let asks = SocketPolicy { outbound: Outbound::Only(nets.iter().map(|n| n.parse().unwrap()).collect()), ..pod() };
    let g = guard(asks);
    assert!(g.allows(addr("10.1.2.3:80"), SocketAddrUse::TcpConnect));
    for refused in ["127.0.0.1:2379", "169.254.169.254:80", "192.0.2.10:10250", "[::1]:80", "[::ffff:127.0.0.1]:80"] {
        assert!(matches!(g.connect_denied(addr(refused).ip()), Some(Denied::Node(_))), "{refused}");
    }
    // Narrowing works: outside the list is the pod's refusal.
    assert_eq!(g.connect_denied(addr("8.8.8.8:53").ip()), Some(Denied::Pod));
    assert!(!g.allows(addr("8.8.8.8:53"), SocketAddrUse::UdpSend));
}

#[test]
fn the_administrator_bounds_and_excepts() {
    let policy = NodePolicy {
        outbound_cidrs: vec!["10.0.0.0/8".parse().unwrap(), "169.254.20.10/32".parse().unwrap()],
        allowed_node_local: vec!["169.254.20.10/32".parse().unwrap()],
        ..NodePolicy::default()
    };
    let g = Guard { pod: pod(), node: node(policy) };
    assert!(g.allows(addr("10.1.2.3:80"), SocketAddrUse::TcpConnect));
    // The NodeLocal DNSCache exception, in both forms.
    assert!(g.allows(addr("169.254.20.10:53"), SocketAddrUse::UdpSend));
    assert!(g.allows(addr("[::ffff:169.254.20.10]:53"), SocketAddrUse::UdpSend));
    // Only that one link-local address.
    assert_eq!(g.connect_denied(addr("169.254.169.254:80").ip()), Some(Denied::Node(Refusal::OutsideNodeCidrs)));
    assert_eq!(g.connect_denied(addr("93.184.216.34:443").ip()), Some(Denied::Node(Refusal::OutsideNodeCidrs)));
    // A pod's `any` cannot go past the node's CIDRs either.
    assert!(!g.allows(addr("8.8.8.8:53"), SocketAddrUse::UdpSend));
}

#[test]
fn an_exception_inside_a_wide_bound_is_the_only_node_local_hole() {
    let policy = NodePolicy { allowed_node_local: vec!["169.254.20.10/32".parse().unwrap()], ..NodePolicy::default() };
    let g = Guard { pod: pod(), node: node(policy) };
    assert!(g.allows(addr("169.254.20.10:53"), SocketAddrUse::TcpConnect));
    assert!(!g.allows(addr("169.254.20.11:53"), SocketAddrUse::TcpConnect));
    assert!(!g.allows(addr("169.254.169.254:80"), SocketAddrUse::TcpConnect));
    assert!(!g.allows(addr("127.0.0.1:53"), SocketAddrUse::TcpConnect));
    // A pod narrowing to other networks loses the exception too.
    let narrow = SocketPolicy { outbound: Outbound::Only(vec!["10.0.0.0/8".parse().unwrap()]), ..pod() };
    let g = Guard { pod: narrow, node: g.node.clone() };
    assert_eq!(g.connect_denied(addr("169.254.20.10:53").ip()), Some(Denied::Pod));
}

#[test]
fn binds_on_node_addresses_are_refused() {
    let g = guard(pod());
    for refused in ["127.0.0.1:0", "127.0.0.1:8080", "192.0.2.10:8080", "192.0.2.10:0", "169.254.1.1:0"] {
        assert!(!g.allows(addr(refused), SocketAddrUse::TcpBind), "{refused}");
        assert!(!g.allows(addr(refused), SocketAddrUse::UdpBind), "{refused}");
    }
    assert!(g.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
    // A node that lets guests reach nothing gives them no client ports either.
    let closed = Guard { pod: pod(), node: node(NodePolicy { outbound_cidrs: Vec::new(), ..NodePolicy::default() }) };
    assert!(!closed.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
    assert!(!closed.allows_any());
    assert!(closed.allows(addr("10.244.1.7:8080"), SocketAddrUse::TcpListen));
}

#[test]
fn outbound_only_lists_networks() {
    let nets = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
    let p = SocketPolicy { outbound: Outbound::Only(nets), ..pod() };
    assert!(p.allows(addr("10.1.2.3:80"), SocketAddrUse::TcpConnect));
    assert!(!p.allows(addr("127.0.0.2:80"), SocketAddrUse::TcpConnect));
    assert!(!p.allows(addr("8.8.8.8:53"), SocketAddrUse::UdpSend));
}

#[test]
fn unspecified_pod_ip_allows_wildcard_binds() {
    let p = SocketPolicy { pod_ips: vec!["0.0.0.0".parse().unwrap()], tcp_ports: [80].into(), ..pod() };
    assert!(p.allows(addr("0.0.0.0:80"), SocketAddrUse::TcpBind));
    assert!(p.allows(addr("0.0.0.0:80"), SocketAddrUse::TcpListen));
    assert!(!p.allows(addr("0.0.0.0:81"), SocketAddrUse::TcpListen));
}

#[test]
fn deny_all_denies_everything_but_accepts() {
    let p = SocketPolicy::deny_all();
    for (a, usage) in [
        ("0.0.0.0:0", SocketAddrUse::TcpBind),
        ("10.0.0.1:80", SocketAddrUse::TcpConnect),
        ("0.0.0.0:0", SocketAddrUse::UdpBind),
        ("10.0.0.1:53", SocketAddrUse::UdpSend),
    ] {
        assert!(!p.allows(addr(a), usage), "{a} {usage:?}");
    }
}
