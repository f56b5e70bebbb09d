//! sha256 content digests (`sha256:<64 lowercase hex>`).
//!
//! wasmlet names every blob by [`Digest`]; it is the key of the on-disk
//! store and the value the node passes to [`crate::Store::gc`].

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

const PREFIX: &str = "sha256:";
const HEX_LEN: usize = 64;

/// A digest string that is not `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {input:?}: expected sha256:<64 lowercase hex digits>")]
pub struct ParseError {
    /// The rejected input.
    pub input: String,
}

/// A validated sha256 digest.
///
/// Only sha256 is supported: it is what every registry wasmlet targets
/// produces, and what the store uses for file names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hash(Sha256::digest(bytes).into())
    }

    /// Reads `reader` to the end and returns its digest and length.
    ///
    /// # Errors
    ///
    /// Any error from `reader`.
    pub fn of_reader(mut reader: impl Read) -> io::Result<(Self, u64)> {
        let mut hasher = Hasher::default();
        let mut buf = vec![0; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(hasher.finish()),
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn from_hash(hash: [u8; 32]) -> Self {
        Self(format!("{PREFIX}{}", hex::encode(hash)))
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s
            .strip_prefix(PREFIX)
            .is_some_and(|hex| hex.len() == HEX_LEN && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        if valid { Ok(Self(s.to_owned())) } else { Err(ParseError { input: s.to_owned() }) }
    }
}

impl TryFrom<String> for Digest {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.0
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Incremental sha256 that also counts bytes.
#[derive(Default)]
pub(crate) struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub(crate) fn finish(self) -> (Digest, u64) {
        (Digest::from_hash(self.inner.finalize().into()), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_bytes_and_reader_agree() {
        assert_eq!(Digest::of(b"").as_str(), EMPTY);
        let data = vec![7u8; 200_000];
        let (d, len) = Digest::of_reader(&data[..]).unwrap();
        assert_eq!(d, Digest::of(&data));
        assert_eq!(len, 200_000);
    }

    #[test]
    fn parses_only_canonical_sha256() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.hex(), &EMPTY[7..]);
        assert_eq!(d.to_string(), EMPTY);
        for bad in [
            "",
            "sha256:",
            &EMPTY[..70],
            &EMPTY.to_uppercase(),
            &EMPTY.replace("sha256", "sha512"),
            &format!("{EMPTY}0"),
            "sha256:../../../../etc/passwd0000000000000000000000000000000000000",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
