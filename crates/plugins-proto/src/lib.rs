//! The kubelet's plugin protocols as Rust types, generated at build time
//! (`build.rs`) from the upstream `.proto` files vendored in `proto/`:
//!
//! | module | proto package | source |
//! |---|---|---|
//! | [`pluginregistration`] | `pluginregistration` | `k8s.io/kubelet@v0.36.3` `pkg/apis/pluginregistration/v1/api.proto` |
//! | [`csi::v1`] | `csi.v1` | `github.com/container-storage-interface/spec@v1.9.0` `csi.proto` |
//! | [`deviceplugin::v1beta1`] | `v1beta1` | `k8s.io/kubelet@v0.36.3` `pkg/apis/deviceplugin/v1beta1/api.proto` |
//! | [`dra::v1`] | `k8s.io.kubelet.pkg.apis.dra.v1` | `k8s.io/kubelet@v0.36.3` `pkg/apis/dra/v1/api.proto` |
//! | [`dra::v1beta1`] | `k8s.io.kubelet.pkg.apis.dra.v1beta1` | `k8s.io/kubelet@v0.36.3` `pkg/apis/dra/v1beta1/api.proto` |
//!
//! Nothing here is written by hand except constants that upstream keeps in
//! Go rather than in the `.proto`: the plugin type names
//! ([`pluginregistration::CSI_PLUGIN`], …), the device plugin API's
//! version, socket name and health values, and the DRA service names.

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

/// The device plugin API.
pub mod deviceplugin {
    /// `v1beta1` (gRPC paths `/v1beta1.Registration/Register`,
    /// `/v1beta1.DevicePlugin/ListAndWatch`, …).
    pub mod v1beta1 {
        tonic::include_proto!("v1beta1");

        /// The API version a plugin sends in `RegisterRequest.version`
        /// (upstream `Version`).
        pub const VERSION: &str = "v1beta1";
        /// The registration socket's name in the device plugin directory
        /// (upstream `KubeletSocket`'s base name).
        pub const KUBELET_SOCKET: &str = "kubelet.sock";
        /// `Device.health` of a healthy device.
        pub const HEALTHY: &str = "Healthy";
        /// `Device.health` of an unhealthy device.
        pub const UNHEALTHY: &str = "Unhealthy";
        /// Upstream's `PreStartContainer` timeout
        /// (`KubeletPreStartContainerRPCTimeoutInSecs`).
        pub const PRE_START_CONTAINER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
    }
}

/// Dynamic resource allocation: the kubelet plugin API of DRA drivers.
pub mod dra {
    /// `k8s.io.kubelet.pkg.apis.dra.v1`.
    pub mod v1 {
        tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1");

        /// The service name a driver lists in `PluginInfo.supported_versions`
        /// (upstream `DRAPluginService`).
        pub const DRA_PLUGIN_SERVICE: &str = "v1.DRAPlugin";
    }
    /// `k8s.io.kubelet.pkg.apis.dra.v1beta1`.
    pub mod v1beta1 {
        tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1beta1");

        /// The service name a driver lists in `PluginInfo.supported_versions`.
        pub const DRA_PLUGIN_SERVICE: &str = "v1beta1.DRAPlugin";
    }
}
