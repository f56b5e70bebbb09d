//! The fixture manifest (`fixtures/fixtures.toml`) and pushing the built
//! fixtures into the test bed's registries.
//!
//! Every fixture goes to the plain registry as `fixtures/<name>:v1` in the
//! CNCF wasm artifact layout. `args-env` is also pushed in the two other
//! layouts wasmlet accepts (`:wasm-to-oci`, `:image`), and to the private
//! registry as `private/args-env:v1`.

use std::path::Path;

use wasmlet_oci::{ClientOptions, Clients, Layout, Reference, RegistryAuth};

use crate::{Error, Result, Testbed};

/// The tag every fixture is pushed with.
pub const TAG: &str = "v1";
/// The fixture pushed in every layout and to the private registry.
pub const LAYOUT_FIXTURE: &str = "args-env";
/// Where the record of pushed images lives inside the test bed directory.
const RECORD: &str = "fixtures.json";

/// One entry of the manifest.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Fixture {
    /// Image name: pushed as `<registry>/fixtures/<name>:v1`.
    pub name: String,
    /// File name in the fixtures build directory.
    pub file: String,
    /// `wasip1-module`, `wasip2-command`, `wasi-http` or `invalid`.
    pub kind: String,
    /// What it does.
    pub description: String,
    /// Exit code of a bare run, if it exits.
    pub expect_exit: Option<i32>,
    /// A substring of the stdout of a bare run.
    pub expect_stdout: Option<String>,
}

#[derive(serde::Deserialize)]
struct Manifest {
    fixture: Vec<Fixture>,
}

/// An image the test bed pushed.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Pushed {
    /// The fixture it holds.
    pub fixture: String,
    /// Full reference, `host:port/repo:tag`.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// Digest of the wasm bytes.
    pub wasm_digest: String,
    /// How it was laid out.
    pub layout: String,
}

/// Reads the fixture manifest.
pub fn load_manifest(path: &Path) -> Result<Vec<Fixture>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let manifest: Manifest =
        toml::from_str(&text).map_err(|e| Error::Manifest { path: path.to_owned(), reason: e.to_string() })?;
    Ok(manifest.fixture)
}

/// The reference of fixture `name` in the plain registry.
pub fn reference(tb: &Testbed, name: &str) -> String {
    format!("{}/fixtures/{name}:{TAG}", tb.registry())
}

/// The reference of the fixture in the private registry.
pub fn private_reference(tb: &Testbed) -> String {
    format!("{}/private/{LAYOUT_FIXTURE}:{TAG}", tb.private_registry().addr)
}

/// OCI clients (one per credentials) that trust the test bed's registries.
pub fn oci_clients(tb: &Testbed) -> Result<Clients> {
    let ca = std::fs::read(&tb.private_registry().ca)
        .map_err(|source| Error::Io { path: tb.private_registry().ca.clone(), source })?;
    let options =
        ClientOptions { insecure_registries: vec![tb.registry()], extra_root_pem: vec![ca], ..Default::default() };
    Clients::new(options).map_err(|e| Error::Push { name: "client".into(), source: Box::new(e) })
}

/// Credentials of the private registry.
pub fn private_auth(tb: &Testbed) -> RegistryAuth {
    let p = tb.private_registry();
    RegistryAuth::Basic(p.username.clone(), p.password.clone())
}

/// Pushes every fixture of `manifest` from `dir`, and records what was pushed
/// in the test bed directory.
pub async fn push_all(tb: &Testbed, manifest: &Path, dir: &Path) -> Result<Vec<Pushed>> {
    let clients = oci_clients(tb)?;
    let mut pushed = Vec::new();
    for fixture in load_manifest(manifest)? {
        let path = dir.join(&fixture.file);
        let wasm = std::fs::read(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let mut targets = vec![(reference(tb, &fixture.name), Layout::Cncf, RegistryAuth::Anonymous)];
        if fixture.name == LAYOUT_FIXTURE {
            let repo = format!("{}/fixtures/{}", tb.registry(), fixture.name);
            targets.push((format!("{repo}:wasm-to-oci"), Layout::WasmToOci, RegistryAuth::Anonymous));
            targets.push((format!("{repo}:image"), Layout::Image, RegistryAuth::Anonymous));
            targets.push((private_reference(tb), Layout::Cncf, private_auth(tb)));
        }
        for (target, layout, auth) in targets {
            let reference: Reference =
                target.parse().map_err(|e| Error::Push { name: fixture.name.clone(), source: Box::new(e) })?;
            let result = match wasmlet_oci::Artifact::builder(wasm.clone()).layout(layout).build() {
                Ok(artifact) => {
                    let client = clients
                        .get(&auth)
                        .map_err(|e| Error::Push { name: fixture.name.clone(), source: Box::new(e) })?;
                    artifact.push(&client, &reference, &auth).await
                }
                Err(e) => Err(e),
            }
            .map_err(|e| Error::Push { name: fixture.name.clone(), source: Box::new(e) })?;
            tracing::debug!(%target, digest = %result.manifest_digest, "pushed fixture");
            pushed.push(Pushed {
                fixture: fixture.name.clone(),
                reference: target,
                digest: result.manifest_digest.to_string(),
                wasm_digest: result.wasm_digest.to_string(),
                layout: layout.name().to_owned(),
            });
        }
    }
    let record = tb.dir().join(RECORD);
    let json = serde_json::to_vec_pretty(&pushed)
        .map_err(|e| Error::Io { path: record.clone(), source: std::io::Error::other(e) })?;
    crate::process::write_file(&record, &json)?;
    Ok(pushed)
}

/// What [`push_all`] pushed, as recorded.
pub fn recorded(tb: &Testbed) -> Result<Vec<Pushed>> {
    let record = tb.dir().join(RECORD);
    let text = std::fs::read(&record).map_err(|source| Error::Io { path: record.clone(), source })?;
    serde_json::from_slice(&text).map_err(|e| Error::Io { path: record, source: std::io::Error::other(e) })
}

/// Asks the registries for the current manifest digest of every recorded image.
pub async fn list(tb: &Testbed) -> Result<Vec<Pushed>> {
    let clients = oci_clients(tb)?;
    let mut out = Vec::new();
    for mut image in recorded(tb)? {
        let reference: Reference =
            image.reference.parse().map_err(|e| Error::Push { name: image.fixture.clone(), source: Box::new(e) })?;
        let auth = if image.reference.starts_with(&tb.private_registry().addr) {
            private_auth(tb)
        } else {
            RegistryAuth::Anonymous
        };
        let client =
            clients.get(&auth).map_err(|e| Error::Push { name: image.fixture.clone(), source: Box::new(e) })?;
        image.digest = client
            .fetch_manifest_digest(&reference, &auth)
            .await
            .map_err(|e| Error::Push { name: image.fixture.clone(), source: Box::new(e) })?;
        out.push(image);
    }
    Ok(out)
}
