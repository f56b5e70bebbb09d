//! The kubelet's plugin protocols as Rust types, generated at build time
//! (`build.rs`) from the upstream `.proto` files vendored in `proto/`:
//!
//! | module | proto package | source |
//! |---|---|---|
//! | [`pluginregistration`] | `pluginregistration` | `k8s.io/kubelet@v0.36.3` `pkg/apis/pluginregistration/v1/api.proto` |
//! | [`csi::v1`] | `csi.v1` | `github.com/container-storage-interface/spec@v1.9.0` `csi.proto` |
//!
//! Nothing here is written by hand except the plugin type names
//! ([`pluginregistration::CSI_PLUGIN`], …), which upstream keeps in Go
//! constants rather than in the `.proto`.

#![allow(missing_docs, clippy::all, unreachable_pub, rust_2018_idioms, reason = "generated code")]

/// `pluginregistration` (v1): how a plugin announces itself on a socket in
/// `<root-dir>/plugins_registry`.
pub mod pluginregistration {
    tonic::include_proto!("pluginregistration");

    /// `PluginInfo.type` of a CSI driver (upstream `CSIPlugin`).
    pub const CSI_PLUGIN: &str = "CSIPlugin";
    /// `PluginInfo.type` of a device plugin (upstream `DevicePlugin`).
    pub const DEVICE_PLUGIN: &str = "DevicePlugin";
    /// `PluginInfo.type` of a DRA driver (upstream `DRAPlugin`).
    pub const DRA_PLUGIN: &str = "DRAPlugin";
}

/// The Container Storage Interface.
pub mod csi {
    /// `csi.v1`: Identity, Controller and Node services.
    pub mod v1 {
        tonic::include_proto!("csi.v1");
    }
}
