//! Header blocks: [`Headers`], the SPDY/3 name/value block format, and the
//! zlib contexts that compress them.
//!
//! A name/value block is a 32-bit count, then for each pair a 32-bit name
//! length, the name, a 32-bit value length and the value; several values
//! of one name are joined with NUL. Names are lower case (Go's framer
//! rejects a block with an upper-case name, and with a repeated name).
//!
//! Each direction of a session has one zlib stream, preset with the
//! [dictionary](super::dictionary), that runs across all of that
//! direction's header blocks; each block ends with a sync flush, so it can
//! be decoded as soon as its frame has arrived.

use bytes::{BufMut, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::dictionary;

/// Most pairs a received block may hold.
pub const MAX_HEADER_PAIRS: usize = 128;
/// Most bytes a received block may decompress to.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Errors decoding or compressing a header block.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The block is malformed (truncated, bad lengths, not UTF-8).
    #[error("malformed header block: {0}")]
    Malformed(&'static str),
    /// The block is over [`MAX_HEADER_BLOCK`] or [`MAX_HEADER_PAIRS`].
    #[error("header block over the limit")]
    TooLarge,
    /// zlib refused the compressed bytes.
    #[error("decompressing a header block")]
    Inflate(#[source] flate2::DecompressError),
    /// The peer's stream uses another dictionary than SPDY/3's.
    #[error("header block compressed with an unknown dictionary (id {0:08x})")]
    Dictionary(u32),
    /// zlib failed to compress (never expected).
    #[error("compressing a header block")]
    Deflate(#[source] flate2::CompressError),
}

/// The headers of a SYN_STREAM, SYN_REPLY or HEADERS frame: lower-case
/// names, each once, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pairs: Vec<(String, String)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Adds a value; the name is lower-cased, and a second value of a name
    /// is joined to the first with NUL, as the wire format wants.
    pub fn append(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        match self.pairs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push('\0');
                existing.push_str(value);
            }
            None => self.pairs.push((name, value.to_owned())),
        }
    }

    /// [`Headers::append`], by value.
    #[must_use]
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.append(name, value);
        self
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or_default())
    }

    /// The pairs, values NUL-joined.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The uncompressed name/value block.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_len(out, self.pairs.len());
        for (name, value) in &self.pairs {
            put_len(out, name.len());
            out.extend_from_slice(name.as_bytes());
            put_len(out, value.len());
            out.extend_from_slice(value.as_bytes());
        }
    }

    /// Parses an uncompressed name/value block.
    pub(crate) fn decode(mut raw: &[u8]) -> Result<Headers, Error> {
        let count = take_len(&mut raw)?;
        if count > MAX_HEADER_PAIRS {
            return Err(Error::TooLarge);
        }
        let mut headers = Headers::new();
        for _ in 0..count {
            let name = take_str(&mut raw)?;
            if name.is_empty() {
                return Err(Error::Malformed("empty header name"));
            }
            let value = take_str(&mut raw)?;
            headers.append(name, value);
        }
        if !raw.is_empty() {
            return Err(Error::Malformed("bytes after the last header"));
        }
        Ok(headers)
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Lengths come from received or local headers bounded far below 4 GiB.
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

fn take_len(raw: &mut &[u8]) -> Result<usize, Error> {
    let Some((head, rest)) = raw.split_first_chunk::<4>() else {
        return Err(Error::Malformed("truncated length"));
    };
    *raw = rest;
    usize::try_from(u32::from_be_bytes(*head)).map_err(|_| Error::TooLarge)
}

fn take_str<'a>(raw: &mut &'a [u8]) -> Result<&'a str, Error> {
    let len = take_len(raw)?;
    if len > raw.len() {
        return Err(Error::Malformed("length past the end of the block"));
    }
    let (bytes, rest) = raw.split_at(len);
    *raw = rest;
    std::str::from_utf8(bytes).map_err(|_| Error::Malformed("header not UTF-8"))
}

/// The sending direction's zlib stream.
pub(crate) struct Deflater {
    inner: Compress,
}

impl Deflater {
    pub(crate) fn new() -> Result<Self, Error> {
        let mut inner = Compress::new(Compression::best(), true);
        inner.set_dictionary(dictionary()).map_err(Error::Deflate)?;
        Ok(Deflater { inner })
    }

    /// Compresses `headers` as one block, ending in a sync flush, onto `out`.
    pub(crate) fn compress(&mut self, headers: &Headers, out: &mut BytesMut) -> Result<(), Error> {
        let mut raw = Vec::with_capacity(64);
        headers.encode(&mut raw);
        let mut compressed = Vec::with_capacity(raw.len() + 64);
        let mut input = raw.as_slice();
        loop {
            let before = self.inner.total_in();
            self.inner.compress_vec(input, &mut compressed, FlushCompress::Sync).map_err(Error::Deflate)?;
            input = &input[counter(self.inner.total_in() - before).min(input.len())..];
            // The flush is complete once zlib took all input and left room.
            if input.is_empty() && compressed.len() < compressed.capacity() {
                break;
            }
            compressed.reserve(compressed.capacity().max(64));
        }
        out.extend_from_slice(&compressed);
        Ok(())
    }
}

/// The receiving direction's zlib stream.
pub(crate) struct Inflater {
    inner: Decompress,
}

impl Inflater {
    pub(crate) fn new() -> Self {
        Inflater { inner: Decompress::new(true) }
    }

    /// Decompresses one block (all of `compressed`) and parses it.
    pub(crate) fn decompress(&mut self, mut compressed: &[u8]) -> Result<Headers, Error> {
        let mut raw = Vec::with_capacity(1024);
        loop {
            let before_in = self.inner.total_in();
            let before_out = raw.len();
            let result = self.inner.decompress_vec(compressed, &mut raw, FlushDecompress::Sync);
            compressed = &compressed[counter(self.inner.total_in() - before_in).min(compressed.len())..];
            let produced = raw.len() - before_out;
            let consumed = counter(self.inner.total_in() - before_in);
            if raw.len() > MAX_HEADER_BLOCK {
                return Err(Error::TooLarge);
            }
            match result {
                Ok(Status::StreamEnd) => return Err(Error::Malformed("header stream ended")),
                Ok(_) if compressed.is_empty() && raw.len() < raw.capacity() => break,
                Ok(_) if produced == 0 && consumed == 0 && raw.len() < raw.capacity() => {
                    return Err(Error::Malformed("undecodable compressed block"));
                }
                Ok(_) => {}
                Err(error) => match error.needs_dictionary() {
                    Some(SPDY3_DICTIONARY_ID) => {
                        self.inner.set_dictionary(dictionary()).map_err(Error::Inflate)?;
                    }
                    Some(id) => return Err(Error::Dictionary(id)),
                    None => return Err(Error::Inflate(error)),
                },
            }
            if raw.len() == raw.capacity() {
                raw.reserve(raw.capacity());
            }
        }
        Headers::decode(&raw)
    }
}

/// The dictionary's Adler-32, as peers announce it in the zlib header.
const SPDY3_DICTIONARY_ID: u32 = 0xe3c6_a7c2;

fn counter(delta: u64) -> usize {
    usize::try_from(delta).unwrap_or(usize::MAX)
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
