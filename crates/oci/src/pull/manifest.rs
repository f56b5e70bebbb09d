//! Fetching a manifest or index with a size limit.
//!
//! `oci-client` reads a manifest response whole, however large; this does
//! the same request (authenticated through `oci-client`'s token handling)
//! with the crate's own HTTP client and stops reading at the limit, so a
//! registry cannot make the node hold more than
//! [`crate::PullLimits::max_manifest_bytes`] for it.

use oci_client::RegistryOperation;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
    OciManifest,
};
use oci_client::secrets::RegistryAuth;

use super::{Error, Result};
use crate::Reference;
use crate::client::Client;
use crate::digest::Digest;

/// What a manifest request accepts.
const ACCEPT: [&str; 4] =
    [OCI_IMAGE_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, IMAGE_MANIFEST_LIST_MEDIA_TYPE];

/// GETs the manifest `reference` names, reading at most `limit` bytes;
/// returns it parsed, with its digest (checked against the reference's
/// digest and the registry's `Docker-Content-Digest`).
pub(crate) async fn fetch(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
    limit: u64,
    progress: &super::Progress,
) -> Result<(OciManifest, String)> {
    let name = reference.whole();
    let failed = |source: OciDistributionError| Error::manifest(&name, source);
    let token = client.auth(reference, auth, RegistryOperation::Pull).await.map_err(failed)?;
    let registry = reference.resolve_registry();
    let object = reference.digest().or(reference.tag()).unwrap_or("latest");
    let url = format!("{}://{registry}/v2/{}/manifests/{object}", client.scheme(registry), reference.repository());
    let mut request = client.http.get(&url).header(http::header::ACCEPT, ACCEPT.join(", "));
    request = match (token, auth) {
        (Some(token), _) => request.bearer_auth(token),
        (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
        (None, RegistryAuth::Bearer(token)) => request.bearer_auth(token),
        (None, RegistryAuth::Anonymous) => request,
    };
    let request_error = |e: reqwest::Error| failed(OciDistributionError::RequestError(e));
    let mut response = request.send().await.map_err(request_error)?;
    let status = response.status();
    if !status.is_success() {
        let message = response.text().await.unwrap_or_default().chars().take(512).collect();
        return Err(failed(OciDistributionError::ServerError { code: status.as_u16(), url, message }));
    }
    let too_large = |size: u64| Error::TooLarge { reference: name.clone(), what: "manifest", size, limit };
    if let Some(length) = response.content_length().filter(|l| *l > limit) {
        return Err(too_large(length));
    }
    let header_digest =
        response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        let size = body.len() as u64 + chunk.len() as u64;
        if size > limit {
            return Err(too_large(size));
        }
        progress.add(chunk.len() as u64);
        body.extend_from_slice(&chunk);
    }
    let digest = Digest::of(&body).to_string();
    for expected in [reference.digest(), header_digest.as_deref()].into_iter().flatten() {
        // Only sha256 is computed here; a header in another algorithm is not checked.
        if expected.starts_with("sha256:") && expected != digest {
            return Err(Error::DigestMismatch {
                reference: name.clone(),
                expected: expected.to_owned(),
                actual: digest,
            });
        }
    }
    let manifest =
        serde_json::from_slice(&body).map_err(|e| failed(OciDistributionError::ManifestParsingError(e.to_string())))?;
    Ok((manifest, digest))
}
