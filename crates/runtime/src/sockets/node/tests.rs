use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn node(policy: NodePolicy) -> NodeNetwork {
    NodeNetwork::with_addresses(policy, ["192.0.2.10".parse().unwrap()])
}

#[test]
fn a_net_that_grants_nothing_is_named_with_the_reason() {
    let n = node(NodePolicy::default());
    for (asked, why) in [
        ("127.0.0.1/32", Refusal::Loopback),
        ("127.0.0.0/8", Refusal::Loopback),
        ("127.1.0.0/16", Refusal::Loopback),
        ("::1/128", Refusal::Loopback),
        ("::ffff:127.0.0.1/128", Refusal::Loopback),
        ("169.254.169.254/32", Refusal::LinkLocal),
        ("169.254.0.0/16", Refusal::LinkLocal),
        ("fe80::/64", Refusal::LinkLocal),
        ("168.63.129.16/32", Refusal::Metadata),
        ("192.0.2.10/32", Refusal::NodeAddress),
        ("0.0.0.0/32", Refusal::Unspecified),
    ] {
        assert_eq!(n.refusal_of_net(&net(asked)), Some(why), "{asked}");
    }
    // Networks that hold reachable addresses are narrowed, not refused.
    for partly in ["0.0.0.0/0", "10.0.0.0/8", "192.0.2.0/24", "169.0.0.0/8", "::/0", "192.0.2.11/32"] {
        assert_eq!(n.refusal_of_net(&net(partly)), None, "{partly}");
    }
}

#[test]
fn exceptions_and_bounds_shape_what_a_net_grants() {
    let n = node(NodePolicy {
        outbound_cidrs: vec![net("10.0.0.0/8"), net("169.254.0.0/16")],
        allowed_node_local: vec![net("169.254.20.10/32")],
        ..NodePolicy::default()
    });
    assert_eq!(n.refusal_of_net(&net("169.254.20.10/32")), None);
    // The exception lies inside: the network is narrowed to it.
    assert_eq!(n.refusal_of_net(&net("169.254.0.0/16")), None);
    assert_eq!(n.refusal_of_net(&net("169.254.169.0/24")), Some(Refusal::LinkLocal));
    assert_eq!(n.refusal_of_net(&net("93.184.216.0/24")), Some(Refusal::OutsideNodeCidrs));
    assert_eq!(n.refusal_of_net(&net("8.8.8.8/32")), Some(Refusal::OutsideNodeCidrs));
    assert_eq!(n.refusal_of_net(&net("0.0.0.0/0")), None);
}

#[test]
fn explicit_node_ips_count_as_node_addresses() {
    let n = node(NodePolicy { node_ips: vec!["203.0.113.7".parse().unwrap()], ..NodePolicy::default() });
    assert_eq!(n.refusal("203.0.113.7".parse().unwrap()), Some(Refusal::NodeAddress));
    assert_eq!(n.refusal("192.0.2.10".parse().unwrap()), Some(Refusal::NodeAddress));
    assert_eq!(n.refusal("203.0.113.8".parse().unwrap()), None);
}

#[test]
fn every_address_of_a_live_node_is_refused_but_the_pod_interfaces() {
    // The live view of this machine: loopback always, the pod interface
    // (here `lo`) left out of the node's addresses but still loopback.
    let n = NodeNetwork::start(NodePolicy::default()).unwrap();
    let addresses = n.node_addresses();
    assert!(addresses.contains(&"127.0.0.1".parse().unwrap()), "{addresses:?}");
    for ip in addresses.iter() {
        assert!(n.refusal(*ip).is_some(), "{ip} of this machine is reachable");
    }
    let pods_on_lo = NodeNetwork::start(NodePolicy { pod_interface: Some("lo".into()), ..NodePolicy::default() });
    let pods_on_lo = pods_on_lo.unwrap();
    assert!(!pods_on_lo.node_addresses().contains(&"127.0.0.1".parse().unwrap()));
    assert_eq!(pods_on_lo.refusal("127.0.0.1".parse().unwrap()), Some(Refusal::Loopback));
}
