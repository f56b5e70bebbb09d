use super::*;

fn block(deflater: &mut Deflater, headers: &Headers) -> Vec<u8> {
    let mut out = BytesMut::new();
    deflater.compress(headers, &mut out).unwrap();
    out.to_vec()
}

#[test]
fn names_are_lower_cased_and_repeats_joined() {
    let mut headers = Headers::new();
    headers.append("StreamType", "data");
    headers.append("X-Stream-Protocol-Version", "v4.channel.k8s.io");
    headers.append("x-stream-protocol-version", "v3.channel.k8s.io");
    assert_eq!(headers.len(), 2);
    assert_eq!(headers.get("streamtype"), Some("data"));
    assert_eq!(headers.get("STREAMTYPE"), Some("data"));
    let values: Vec<_> = headers.iter().collect();
    assert_eq!(values[1], ("x-stream-protocol-version", "v4.channel.k8s.io\0v3.channel.k8s.io"));
    assert_eq!(headers.get("x-stream-protocol-version"), Some("v4.channel.k8s.io"));
}

#[test]
fn uncompressed_block_round_trips_with_the_exact_layout() {
    let headers = Headers::new().with("port", "80");
    let mut raw = Vec::new();
    headers.encode(&mut raw);
    assert_eq!(raw, b"\0\0\0\x01\0\0\0\x04port\0\0\0\x0280");
    assert_eq!(Headers::decode(&raw).unwrap(), headers);
}

#[test]
fn malformed_blocks_are_refused() {
    assert!(matches!(Headers::decode(b"\0\0"), Err(Error::Malformed(_))));
    assert!(matches!(Headers::decode(b"\0\0\0\x01\0\0\0\x09port"), Err(Error::Malformed(_))));
    assert!(matches!(Headers::decode(b"\0\0\0\x01\0\0\0\0\0\0\0\0"), Err(Error::Malformed(_))));
    assert!(matches!(Headers::decode(b"\0\0\0\0extra"), Err(Error::Malformed(_))));
    assert!(matches!(Headers::decode(b"\x7f\0\0\0"), Err(Error::TooLarge)));
}

#[test]
fn compression_contexts_carry_across_blocks() {
    let mut deflater = Deflater::new().unwrap();
    let mut inflater = Inflater::new();
    let blocks = [
        Headers::new().with("streamtype", "error").with("port", "8080").with("requestid", "0"),
        Headers::new().with("streamtype", "data").with("port", "8080").with("requestid", "0"),
        Headers::new(),
        Headers::new().with("streamtype", "stdout"),
    ];
    let mut sizes = Vec::new();
    for headers in &blocks {
        let compressed = block(&mut deflater, headers);
        sizes.push(compressed.len());
        assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]), "sync flush: {compressed:02x?}");
        assert_eq!(&inflater.decompress(&compressed).unwrap(), headers);
    }
    // Only the first block carries the zlib header naming the dictionary,
    // and the second (nearly the same headers) is smaller thanks to the window.
    let first = block(&mut Deflater::new().unwrap(), &blocks[0]);
    assert_eq!(&first[..6], &[0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);
    assert!(sizes[1] < sizes[0], "{sizes:?}");
}

#[test]
fn a_block_from_another_dictionary_is_refused() {
    let mut compress = Compress::new(Compression::default(), true);
    compress.set_dictionary(b"not the spdy dictionary").unwrap();
    let mut raw = Vec::new();
    Headers::new().with("a", "b").encode(&mut raw);
    let mut compressed = Vec::with_capacity(256);
    compress.compress_vec(&raw, &mut compressed, FlushCompress::Sync).unwrap();
    assert!(matches!(Inflater::new().decompress(&compressed), Err(Error::Dictionary(_))));
    assert!(Inflater::new().decompress(b"\x78\x9cgarbage!").is_err());
}

#[test]
fn a_decompression_bomb_is_refused() {
    let mut deflater = Deflater::new().unwrap();
    let huge = "x".repeat(MAX_HEADER_BLOCK + 1);
    let compressed = block(&mut deflater, &Headers::new().with("big", &huge));
    assert!(compressed.len() < 2048, "{}", compressed.len());
    assert!(matches!(Inflater::new().decompress(&compressed), Err(Error::TooLarge)));
}
