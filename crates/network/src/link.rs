//! The interface holding pod addresses, over rtnetlink.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkUnspec, LinkVeth};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Error;

/// An open interface.
pub(crate) struct Link {
    name: String,
    index: u32,
    handle: Handle,
}

impl Link {
    /// Finds `name`, creating it (one end of a veth pair) when missing, and
    /// brings it up. The netlink connection runs on `tracker` until `cancel`.
    pub(crate) async fn open(name: &str, tracker: &TaskTracker, cancel: CancellationToken) -> Result<Self, Error> {
        let netlink = |op| move |source| Error::Netlink { op, interface: name.to_owned(), source };
        let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Socket)?;
        tracker.spawn(async move {
            tokio::select! {
                () = connection => {}
                () = cancel.cancelled() => {}
            }
        });
        let index = match find(&handle, name).await.map_err(netlink("looking up"))? {
            Some(index) => index,
            None => {
                let peer = format!("{}p", truncate(name, 14));
                handle.link().add(LinkVeth::new(name, &peer).build()).execute().await.map_err(netlink("creating"))?;
                tracing::info!(interface = name, %peer, "created the pod address interface");
                // Both ends up, so the interface does not show NO-CARRIER.
                if let Ok(Some(peer_index)) = find(&handle, &peer).await {
                    let up = LinkUnspec::new_with_index(peer_index).up().build();
                    if let Err(e) = handle.link().set(up).execute().await {
                        tracing::debug!(error = %e, "bringing the peer up failed");
                    }
                }
                find(&handle, name).await.map_err(netlink("looking up"))?.ok_or_else(|| Error::Netlink {
                    op: "finding the new interface",
                    interface: name.to_owned(),
                    source: rtnetlink::Error::RequestFailed,
                })?
            }
        };
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink("bringing up"))?;
        Ok(Self { name: name.to_owned(), index, handle })
    }

    /// Adds `ip/32` (or `/128`).
    pub(crate) async fn add(&self, ip: IpAddr) -> Result<(), Error> {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        match self.handle.address().add(self.index, ip, prefix).execute().await {
            Ok(()) => Ok(()),
            // Already there (left by a previous run): fine.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_eexist() => Ok(()),
            Err(source) => Err(Error::Netlink { op: "adding an address", interface: self.name.clone(), source }),
        }
    }

    /// Removes `ip`.
    pub(crate) async fn remove(&self, ip: IpAddr) -> Result<(), Error> {
        let mut found = self.handle.address().get().set_link_index_filter(self.index).set_address_filter(ip).execute();
        while let Some(msg) = found.try_next().await.map_err(|source| self.error("listing addresses", source))? {
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|source| self.error("removing an address", source))?;
        }
        Ok(())
    }

    /// Every address on the interface.
    pub(crate) async fn addresses(&self) -> Result<Vec<IpAddr>, Error> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let mut out = Vec::new();
        let mut all = self.handle.address().get().set_link_index_filter(self.index).execute();
        while let Some(msg) = all.try_next().await.map_err(|source| self.error("listing addresses", source))? {
            out.extend(msg.attributes.iter().filter_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            }));
        }
        Ok(out)
    }

    fn error(&self, op: &'static str, source: rtnetlink::Error) -> Error {
        Error::Netlink { op, interface: self.name.clone(), source }
    }
}

async fn find(handle: &Handle, name: &str) -> Result<Option<u32>, rtnetlink::Error> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        // ENODEV: no such interface.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(e),
    }
}

/// EEXIST.
const fn libc_eexist() -> i32 {
    17
}

fn truncate(s: &str, max: usize) -> &str {
    &s[..s.len().min(max)]
}
