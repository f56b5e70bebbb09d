use super::*;

fn round_trip(frames: &[Frame]) -> Vec<u8> {
    let mut deflater = Deflater::new().unwrap();
    let mut inflater = Inflater::new();
    let mut wire = BytesMut::new();
    for frame in frames {
        frame.encode(&mut deflater, &mut wire).unwrap();
    }
    let all = wire.to_vec();
    let mut rest = wire.freeze();
    for frame in frames {
        let head = Head::parse(rest[..HEAD_LEN].try_into().unwrap());
        rest.advance(HEAD_LEN);
        let payload = rest.split_to(head.len);
        assert_eq!(&decode(head, payload, &mut inflater).unwrap(), frame);
    }
    assert!(rest.is_empty());
    all
}

#[test]
fn every_frame_type_round_trips() {
    let headers = Headers::new().with("streamtype", "data").with("port", "8080").with("requestid", "0");
    round_trip(&[
        Frame::SynStream { stream_id: 1, associated: 0, priority: 0, flags: 0, headers: headers.clone() },
        Frame::SynStream { stream_id: 3, associated: 1, priority: 7, flags: FLAG_FIN | FLAG_UNIDIRECTIONAL, headers },
        Frame::SynReply { stream_id: 1, flags: 0, headers: Headers::new() },
        Frame::SynReply { stream_id: 3, flags: FLAG_FIN, headers: Headers::new().with("a", "b") },
        Frame::Headers { stream_id: 5, flags: FLAG_FIN, headers: Headers::new().with("x", "y") },
        Frame::RstStream { stream_id: 7, status: RstStatus::Cancel },
        Frame::RstStream { stream_id: 9, status: RstStatus::Other(42) },
        Frame::Settings {
            flags: 1,
            entries: vec![Setting { flags: 1, id: SETTINGS_INITIAL_WINDOW_SIZE, value: 1 << 20 }],
        },
        Frame::Ping { id: 1 },
        Frame::GoAway { last_good: 9, status: GoAwayStatus::Ok },
        Frame::WindowUpdate { stream_id: 0, delta: 0x7fff_ffff },
        Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"hello") },
        Frame::Data { stream_id: 0x7fff_ffff, flags: FLAG_FIN, data: Bytes::new() },
    ]);
}

#[test]
fn fixed_frames_have_the_spec_layout() {
    let wire = round_trip(&[Frame::Ping { id: 1 }]);
    assert_eq!(wire, [0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1]);
    let wire = round_trip(&[Frame::RstStream { stream_id: 3, status: RstStatus::RefusedStream }]);
    assert_eq!(wire, [0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 3, 0, 0, 0, 3]);
    let wire = round_trip(&[Frame::WindowUpdate { stream_id: 5, delta: 0x8000 }]);
    assert_eq!(wire, [0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 5, 0, 0, 0x80, 0]);
    let wire = round_trip(&[Frame::GoAway { last_good: 7, status: GoAwayStatus::ProtocolError }]);
    assert_eq!(wire, [0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 7, 0, 0, 0, 1]);
    let wire = round_trip(&[Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::from_static(b"ab") }]);
    assert_eq!(wire, [0, 0, 0, 1, 0x01, 0, 0, 2, b'a', b'b']);
}

#[test]
fn syn_stream_carries_ids_priority_and_a_compressed_block() {
    let syn = Frame::SynStream { stream_id: 5, associated: 0, priority: 3, flags: FLAG_FIN, headers: Headers::new() };
    let wire = round_trip(&[syn]);
    assert_eq!(&wire[..4], &[0x80, 0x03, 0x00, 0x01]);
    assert_eq!(wire[4], FLAG_FIN);
    assert_eq!(usize::from(wire[7]), wire.len() - HEAD_LEN);
    assert_eq!(&wire[8..18], &[0, 0, 0, 5, 0, 0, 0, 0, 3 << 5, 0]);
    // The block: the zlib header with the dictionary id, then deflate data.
    assert_eq!(&wire[18..24], &[0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);
}

#[test]
fn invalid_frames_are_errors() {
    let mut inflater = Inflater::new();
    let head = |bytes: [u8; 8]| Head::parse(bytes);
    // SPDY/2 control frame.
    let old = head([0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4]);
    assert!(matches!(decode(old, Bytes::from_static(&[0, 0, 0, 1]), &mut inflater), Err(Error::Version(2))));
    // RST_STREAM too short, and on stream 0.
    let short = head([0x80, 0x03, 0x00, 0x03, 0, 0, 0, 4]);
    assert!(matches!(decode(short, Bytes::from_static(&[0, 0, 0, 1]), &mut inflater), Err(Error::Short { .. })));
    let zero = head([0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8]);
    let payload = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 5]);
    assert!(matches!(decode(zero, payload, &mut inflater), Err(Error::ZeroStream(3))));
    // DATA on stream 0.
    let data = head([0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(decode(data, Bytes::new(), &mut inflater), Err(Error::ZeroStream(0))));
    // A SYN_STREAM whose block is not zlib.
    let syn = head([0x80, 0x03, 0x00, 0x01, 0, 0, 0, 14]);
    let payload = Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    assert!(matches!(decode(syn, payload, &mut inflater), Err(Error::Headers { stream_id: 1, .. })));
    // Unknown control types are ignored, not errors.
    let unknown = head([0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 0]);
    assert_eq!(decode(unknown, Bytes::new(), &mut inflater).unwrap(), Frame::Unknown { kind: 10 });
}
