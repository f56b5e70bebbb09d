//! [`User`]: who made a request, as the authenticators found it, and how
//! an x509 client certificate names one (CN the user, O the groups).

use std::collections::BTreeMap;

use x509_parser::prelude::{FromDer, X509Certificate};

/// The user every authenticated request also belongs to.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The anonymous user (only with anonymous authentication on).
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of the anonymous user.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct User {
    /// The user name (`system:node:x`, `kube-apiserver`, `system:serviceaccount:ns:sa`).
    pub name: String,
    /// The UID, if the authenticator knows one.
    pub uid: Option<String>,
    /// The groups.
    pub groups: Vec<String>,
    /// Extra attributes (from TokenReview), passed on to SubjectAccessReview.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> User {
        User { name: ANONYMOUS_USER.to_owned(), groups: vec![UNAUTHENTICATED_GROUP.to_owned()], ..User::default() }
    }

    /// The user named by a client certificate (DER; already verified
    /// against the client CA by the TLS layer): CN the name, each O a
    /// group, plus `system:authenticated`. `None` without a CN.
    pub fn from_certificate(der: &[u8]) -> Option<User> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
        if name.is_empty() {
            return None;
        }
        let mut groups: Vec<String> =
            subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_owned)).collect();
        groups.push(AUTHENTICATED_GROUP.to_owned());
        Some(User { name, uid: None, groups, extra: BTreeMap::new() })
    }
}
