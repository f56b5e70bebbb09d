//! `--guest-outbound-cidrs` and `--allowed-node-local-destinations`: the node
//! administrator's limits on where guests may connect (see
//! `wasmlet_runtime::sockets`). Pods' `wasmlet.dev/outbound` annotations
//! only narrow them.

use std::net::IpAddr;

use ipnet::IpNet;
use wasmlet_runtime::NodePolicy;

use super::{Invalid, invalid};

/// The guests' network limits from the two flags' values (`None`: unset),
/// for a node at `node_ip` whose pods' addresses are on `pod_interface`.
pub(crate) fn parse(
    outbound: Option<&str>,
    node_local: Option<&str>,
    node_ip: IpAddr,
    pod_interface: Option<String>,
) -> Result<NodePolicy, Invalid> {
    let mut policy = NodePolicy { pod_interface, node_ips: vec![node_ip], ..NodePolicy::default() };
    if let Some(value) = outbound {
        policy.outbound_cidrs = match value.trim() {
            "none" => Vec::new(),
            "" => {
                return Err(invalid(
                    "--guest-outbound-cidrs is empty: list CIDRs, or `none` to refuse every connection",
                ));
            }
            list => nets("--guest-outbound-cidrs", list)?,
        };
    }
    if let Some(value) = node_local {
        policy.allowed_node_local = nets("--allowed-node-local-destinations", value)?;
    }
    Ok(policy)
}

/// A comma-separated list of CIDRs or IP addresses (an address is a /32 or /128).
fn nets(flag: &str, list: &str) -> Result<Vec<IpNet>, Invalid> {
    super::split_list(list)
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(format!("{flag}: {item:?} is not a CIDR or an IP address")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn defaults_reach_everything_but_the_node() {
        let p = parse(None, None, NODE, Some("wasmlet0".into())).unwrap();
        assert_eq!(p.outbound_cidrs, NodePolicy::default().outbound_cidrs);
        assert!(p.allowed_node_local.is_empty());
        assert_eq!((p.node_ips, p.pod_interface.as_deref()), (vec![NODE], Some("wasmlet0")));
    }

    #[test]
    fn lists_parse_cidrs_and_addresses() {
        let p = parse(Some("10.0.0.0/8, 2001:db8::/32,203.0.113.7"), Some("169.254.20.10"), NODE, None).unwrap();
        let outbound: Vec<String> = p.outbound_cidrs.iter().map(ToString::to_string).collect();
        assert_eq!(outbound, ["10.0.0.0/8", "2001:db8::/32", "203.0.113.7/32"]);
        assert_eq!(p.allowed_node_local, vec!["169.254.20.10/32".parse::<IpNet>().unwrap()]);
        // Host bits are dropped, as upstream does for CIDR flags.
        let p = parse(Some("10.1.2.3/8"), Some(""), NODE, None).unwrap();
        assert_eq!(p.outbound_cidrs, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert!(p.allowed_node_local.is_empty());
        assert!(parse(Some("none"), None, NODE, None).unwrap().outbound_cidrs.is_empty());
    }

    #[test]
    fn flags_and_file_keys_are_upstream_shaped() {
        use clap::Parser;
        let flags = super::super::Args::try_parse_from([
            "wasmlet",
            "--guest-outbound-cidrs=none",
            "--allowed-node-local-destinations=169.254.20.10",
        ])
        .unwrap();
        assert_eq!(flags.guest_outbound_cidrs.as_deref(), Some("none"));
        assert_eq!(flags.allowed_node_local_destinations.as_deref(), Some("169.254.20.10"));
        let file: super::super::Args = serde_yaml::from_str(
            "guestOutboundCIDRs: [10.0.0.0/8, 192.168.0.0/16]\nallowedNodeLocalDestinations: [169.254.20.10]\n",
        )
        .unwrap();
        assert_eq!(file.guest_outbound_cidrs.as_deref(), Some("10.0.0.0/8,192.168.0.0/16"));
        assert_eq!(file.allowed_node_local_destinations.as_deref(), Some("169.254.20.10"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (outbound, local, needle) in [
            (Some("everywhere"), None, "--guest-outbound-cidrs: \"everywhere\""),
            (Some(" "), None, "--guest-outbound-cidrs is empty"),
            (None, Some("10.0.0.0/33"), "--allowed-node-local-destinations: \"10.0.0.0/33\""),
        ] {
            let err = parse(outbound, local, NODE, None).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
