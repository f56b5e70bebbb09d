//! Calls to a DRA driver in the service version chosen at registration
//! (`v1.DRAPlugin`, else `v1beta1.DRAPlugin`); answers come back as `v1`
//! messages (`v1beta1` has the same fields, less `share_id`).

use std::collections::HashMap;
use std::time::Duration;

use tonic::transport::Channel;
use wasmlet_plugins_proto::dra::{v1, v1beta1};

/// The gRPC service a driver is called through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `v1.DRAPlugin`.
    V1,
    /// `v1beta1.DRAPlugin`.
    V1beta1,
}

/// The services this kubelet speaks, most recent first.
pub const SUPPORTED: [&str; 2] = [v1::DRA_PLUGIN_SERVICE, v1beta1::DRA_PLUGIN_SERVICE];

impl Service {
    /// The first of `offered` this kubelet supports, in the driver's order
    /// (upstream `validateSupportedServices`).
    ///
    /// # Errors
    ///
    /// None is offered, or none is supported.
    pub fn choose(offered: &[String]) -> Result<Service, String> {
        if offered.is_empty() {
            return Err("empty list of supported gRPC services (aka supported versions)".into());
        }
        for s in offered {
            if s == v1::DRA_PLUGIN_SERVICE {
                return Ok(Service::V1);
            }
            if s == v1beta1::DRA_PLUGIN_SERVICE {
                return Ok(Service::V1beta1);
            }
        }
        Err(format!(
            "none of services supported by the plugin ({}) are supported by the kubelet ({})",
            go_quoted(offered),
            go_quoted(&SUPPORTED.map(String::from))
        ))
    }
}

/// `["a" "b"]`, as Go's `%q` prints a string slice.
fn go_quoted(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" "))
}

/// A failed call: the gRPC error, or no answer in time.
pub(crate) fn call_error(status: Result<tonic::Status, Duration>) -> String {
    match status {
        Ok(s) => format!("rpc error: code = {:?} desc = {}", s.code(), s.message()),
        Err(t) => format!("rpc error: code = DeadlineExceeded desc = no answer within {t:?}"),
    }
}

/// `NodePrepareResources` for `claims`.
pub(crate) async fn prepare(
    channel: Channel,
    service: Service,
    claims: Vec<v1::Claim>,
    timeout: Duration,
) -> Result<HashMap<String, v1::NodePrepareResourceResponse>, String> {
    let call = async {
        match service {
            Service::V1 => {
                let mut c = v1::dra_plugin_client::DraPluginClient::new(channel);
                c.node_prepare_resources(v1::NodePrepareResourcesRequest { claims })
                    .await
                    .map(|r| r.into_inner().claims)
            }
            Service::V1beta1 => {
                let mut c = v1beta1::dra_plugin_client::DraPluginClient::new(channel);
                let claims = claims.into_iter().map(claim_beta).collect();
                let answer = c.node_prepare_resources(v1beta1::NodePrepareResourcesRequest { claims }).await?;
                Ok(answer.into_inner().claims.into_iter().map(|(uid, r)| (uid, prepared_v1(r))).collect())
            }
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(claims)) => Ok(claims),
        Ok(Err(status)) => Err(call_error(Ok(status))),
        Err(_) => Err(call_error(Err(timeout))),
    }
}

/// `NodeUnprepareResources` for `claims`: the error of each claim, empty
/// when it went well.
pub(crate) async fn unprepare(
    channel: Channel,
    service: Service,
    claims: Vec<v1::Claim>,
    timeout: Duration,
) -> Result<HashMap<String, String>, String> {
    let call = async {
        match service {
            Service::V1 => {
                let mut c = v1::dra_plugin_client::DraPluginClient::new(channel);
                let answer = c.node_unprepare_resources(v1::NodeUnprepareResourcesRequest { claims }).await?;
                Ok(answer.into_inner().claims.into_iter().map(|(uid, r)| (uid, r.error)).collect())
            }
            Service::V1beta1 => {
                let mut c = v1beta1::dra_plugin_client::DraPluginClient::new(channel);
                let claims = claims.into_iter().map(claim_beta).collect();
                let answer = c.node_unprepare_resources(v1beta1::NodeUnprepareResourcesRequest { claims }).await?;
                Ok(answer.into_inner().claims.into_iter().map(|(uid, r)| (uid, r.error)).collect())
            }
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(claims)) => Ok(claims),
        Ok(Err(status)) => Err(call_error(Ok(status))),
        Err(_) => Err(call_error(Err(timeout))),
    }
}

fn claim_beta(c: v1::Claim) -> v1beta1::Claim {
    v1beta1::Claim { namespace: c.namespace, uid: c.uid, name: c.name }
}

fn prepared_v1(r: v1beta1::NodePrepareResourceResponse) -> v1::NodePrepareResourceResponse {
    let devices = r
        .devices
        .into_iter()
        .map(|d| v1::Device {
            request_names: d.request_names,
            pool_name: d.pool_name,
            device_name: d.device_name,
            cdi_device_ids: d.cdi_device_ids,
            share_id: None,
        })
        .collect();
    v1::NodePrepareResourceResponse { devices, error: r.error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drivers_first_supported_service_is_chosen() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(Service::choose(&s(&["v1beta1.DRAPlugin", "v1.DRAPlugin"])), Ok(Service::V1beta1));
        assert_eq!(Service::choose(&s(&["v1alpha4.Node", "v1.DRAPlugin"])), Ok(Service::V1));
        assert_eq!(Service::choose(&[]).unwrap_err(), "empty list of supported gRPC services (aka supported versions)");
        assert_eq!(
            Service::choose(&s(&["1.0.0"])).unwrap_err(),
            r#"none of services supported by the plugin (["1.0.0"]) are supported by the kubelet (["v1.DRAPlugin" "v1beta1.DRAPlugin"])"#
        );
    }
}
