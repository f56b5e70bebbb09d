//! Which ResourceClaims a pod uses, and the checks before preparing one
//! (upstream `resourceclaim.Name`, `IsForPod`, `IsReservedForPod`).

use k8s_openapi::api::core::v1::{Pod, PodResourceClaim};
use k8s_openapi::api::resource::v1::ResourceClaim;

/// The name of the claim behind `pod_claim`: its `resourceClaimName`, or
/// the claim generated from its template (from the pod's status).
/// `Ok(None)`: the template produced no claim, nothing to do. The flag is
/// whether the claim must be owned by the pod (a generated one).
///
/// # Errors
///
/// The generated claim is not in the pod's status yet, or the pod claim
/// names neither a claim nor a template.
pub(crate) fn name(pod: &Pod, pod_claim: &PodResourceClaim) -> Result<Option<(String, bool)>, String> {
    let (ns, pod_name) = key(pod);
    if let Some(claim) = &pod_claim.resource_claim_name {
        return Ok(Some((claim.clone(), false)));
    }
    if pod_claim.resource_claim_template_name.is_some() {
        let statuses = pod.status.as_ref().and_then(|s| s.resource_claim_statuses.as_ref());
        return match statuses.into_iter().flatten().find(|s| s.name == pod_claim.name) {
            Some(s) => Ok(s.resource_claim_name.clone().map(|n| (n, true))),
            None => Err(format!("pod \"{ns}/{pod_name}\": ResourceClaim not created yet")),
        };
    }
    Err(format!(
        "pod \"{ns}/{pod_name}\", spec.resourceClaim {:?}: none of the supported fields are set",
        pod_claim.name
    ))
}

/// Every claim name the pod uses, with the owner flag.
///
/// # Errors
///
/// As [`name`].
pub(crate) fn names(pod: &Pod) -> Result<Vec<(String, bool)>, String> {
    let claims = pod.spec.as_ref().and_then(|s| s.resource_claims.as_ref());
    let mut out = Vec::new();
    for c in claims.into_iter().flatten() {
        if let Some(n) = name(pod, c)? {
            out.push(n);
        }
    }
    Ok(out)
}

/// Checks that a generated claim was made for this pod.
///
/// # Errors
///
/// Another namespace, or the pod does not control it.
pub(crate) fn is_for_pod(pod: &Pod, claim: &ResourceClaim) -> Result<(), String> {
    let (ns, pod_name) = key(pod);
    let claim_ns = claim.metadata.namespace.as_deref().unwrap_or_default();
    let claim_name = claim.metadata.name.as_deref().unwrap_or_default();
    if claim_ns != ns {
        return Err(format!(
            "ResourceClaim {claim_ns}/{claim_name} is not in the same namespace as Pod {ns}/{pod_name}"
        ));
    }
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let controlled =
        claim.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid);
    if !controlled {
        return Err(format!(
            "ResourceClaim {claim_ns}/{claim_name} was not created for Pod {ns}/{pod_name} (Pod is not owner)"
        ));
    }
    Ok(())
}

/// Whether the claim is reserved for the pod (`status.reservedFor`).
pub(crate) fn is_reserved_for(pod: &Pod, claim: &ResourceClaim) -> bool {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    claim.status.as_ref().and_then(|s| s.reserved_for.as_ref()).into_iter().flatten().any(|r| r.uid == uid)
}

/// The drivers of the claim's allocation, sorted and once each.
///
/// # Errors
///
/// `not allocated`.
pub(crate) fn drivers(claim: &ResourceClaim) -> Result<Vec<String>, String> {
    let allocation = claim.status.as_ref().and_then(|s| s.allocation.as_ref()).ok_or("not allocated")?;
    let mut drivers: Vec<String> = allocation
        .devices
        .as_ref()
        .and_then(|d| d.results.as_ref())
        .into_iter()
        .flatten()
        .map(|r| r.driver.clone())
        .collect();
    drivers.sort();
    drivers.dedup();
    Ok(drivers)
}

fn key(pod: &Pod) -> (&str, &str) {
    (pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "p", "uid": "pod-uid"},
            "spec": {"containers": [], "resourceClaims": [
                {"name": "direct", "resourceClaimName": "shared"},
                {"name": "templ", "resourceClaimTemplateName": "t"},
                {"name": "none", "resourceClaimTemplateName": "t2"}
            ]},
            "status": {"resourceClaimStatuses": [{"name": "templ", "resourceClaimName": "p-templ-x"}, {"name": "none"}]}
        }))
        .unwrap()
    }

    fn claim(owner: Option<&str>, reserved: &[&str], allocated: bool) -> ResourceClaim {
        let refs: Vec<serde_json::Value> =
            owner.into_iter().map(|uid| serde_json::json!({"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": uid, "controller": true})).collect();
        let reserved: Vec<serde_json::Value> =
            reserved.iter().map(|uid| serde_json::json!({"resource": "pods", "name": "p", "uid": uid})).collect();
        let mut status = serde_json::json!({"reservedFor": reserved});
        if allocated {
            status["allocation"] = serde_json::json!({"devices": {"results": [
                {"request": "r", "driver": "b.io", "pool": "n", "device": "d0"},
                {"request": "r", "driver": "a.io", "pool": "n", "device": "d1"},
                {"request": "s", "driver": "b.io", "pool": "n", "device": "d2"}
            ]}});
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": "p-templ-x", "uid": "claim-uid", "ownerReferences": refs},
            "spec": {}, "status": status
        }))
        .unwrap()
    }

    #[test]
    fn names_come_from_the_spec_or_the_pods_status() {
        assert_eq!(names(&pod()).unwrap(), vec![("shared".to_string(), false), ("p-templ-x".to_string(), true)]);
        let mut early = pod();
        early.status = None;
        assert_eq!(names(&early).unwrap_err(), "pod \"ns/p\": ResourceClaim not created yet");
        let odd: PodResourceClaim = serde_json::from_value(serde_json::json!({"name": "x"})).unwrap();
        assert!(name(&pod(), &odd).unwrap_err().contains("none of the supported fields are set"));
    }

    #[test]
    fn ownership_reservation_and_allocation_are_checked() {
        assert_eq!(is_for_pod(&pod(), &claim(Some("pod-uid"), &[], true)), Ok(()));
        assert_eq!(
            is_for_pod(&pod(), &claim(Some("other"), &[], true)).unwrap_err(),
            "ResourceClaim ns/p-templ-x was not created for Pod ns/p (Pod is not owner)"
        );
        assert!(is_reserved_for(&pod(), &claim(None, &["pod-uid"], true)));
        assert!(!is_reserved_for(&pod(), &claim(None, &["someone"], true)));
        assert_eq!(drivers(&claim(None, &[], true)).unwrap(), ["a.io", "b.io"]);
        assert_eq!(drivers(&claim(None, &[], false)).unwrap_err(), "not allocated");
    }
}
