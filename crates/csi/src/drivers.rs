//! The CSI drivers registered on this node (upstream `DriversStore`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::client::DriverClient;
use crate::version::Version;

/// One registered driver.
#[derive(Debug, Clone)]
pub struct Driver {
    /// Its CSI endpoint.
    pub endpoint: PathBuf,
    /// The highest version it supports.
    pub version: Version,
    /// A client of its Node service.
    pub client: DriverClient,
}

/// The registered drivers by name. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Drivers {
    inner: Arc<RwLock<HashMap<String, Driver>>>,
}

/// A driver that is not registered (upstream's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("driver name {0} not found in the list of registered CSI drivers")]
pub struct NotRegistered(pub String);

impl Drivers {
    /// The driver named `name`.
    ///
    /// # Errors
    ///
    /// It is not registered.
    pub fn get(&self, name: &str) -> Result<Driver, NotRegistered> {
        let drivers = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        drivers.get(name).cloned().ok_or_else(|| NotRegistered(name.to_owned()))
    }

    /// Registers (or replaces) a driver.
    pub fn set(&self, name: &str, driver: Driver) {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name.to_owned(), driver);
    }

    /// Removes a driver; whether it was there.
    pub fn remove(&self, name: &str) -> bool {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(name).is_some()
    }

    /// The names of the registered drivers.
    pub fn names(&self) -> Vec<String> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner).keys().cloned().collect()
    }
}
