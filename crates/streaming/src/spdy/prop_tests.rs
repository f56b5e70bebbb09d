//! Property tests of the SPDY/3.1 decoder: frames and header blocks come
//! from whoever reaches `exec`/`attach`/`portforward`. Decoding never
//! panics, and what the encoder writes decodes to the same frame.

use bytes::{Buf, Bytes, BytesMut};
use proptest::prelude::*;

use super::frame::{FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, HEAD_LEN, Head, decode};
use super::headers::{Deflater, Headers, Inflater};

fn headers() -> impl Strategy<Value = Headers> {
    proptest::collection::vec(("[a-z0-9-]{1,12}", "[^\\x00]{0,24}"), 0..6)
        .prop_map(|pairs| pairs.iter().fold(Headers::new(), |h, (n, v)| h.with(n, v)))
}

fn stream_id() -> impl Strategy<Value = u32> {
    1u32..(1 << 31)
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            stream_id(),
            0u32..(1 << 31),
            0u8..8,
            proptest::sample::select(vec![0, FLAG_FIN, FLAG_FIN | FLAG_UNIDIRECTIONAL]),
            headers()
        )
            .prop_map(|(stream_id, associated, priority, flags, headers)| Frame::SynStream {
                stream_id,
                associated,
                priority,
                flags,
                headers
            }),
        (stream_id(), proptest::sample::select(vec![0, FLAG_FIN]), headers())
            .prop_map(|(stream_id, flags, headers)| Frame::SynReply { stream_id, flags, headers }),
        (stream_id(), proptest::sample::select(vec![0, FLAG_FIN]), headers())
            .prop_map(|(stream_id, flags, headers)| Frame::Headers { stream_id, flags, headers }),
        any::<u32>().prop_map(|id| Frame::Ping { id }),
        (stream_id(), 1u32..(1 << 31)).prop_map(|(stream_id, delta)| Frame::WindowUpdate { stream_id, delta }),
        (stream_id(), proptest::sample::select(vec![0, FLAG_FIN]), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(stream_id, flags, data)| Frame::Data { stream_id, flags, data: Bytes::from(data) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_of_garbage_never_panic(
        head in any::<[u8; HEAD_LEN]>(),
        control: bool,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut head = head;
        if control {
            // Version 3, so the type-specific parsing runs.
            head[0] = 0x80;
            head[1] = 3;
            head[2] = 0;
            head[3] %= 12;
        }
        let mut inflater = Inflater::new();
        let _ = decode(Head::parse(head), Bytes::from(payload), &mut inflater);
    }

    #[test]
    fn header_blocks_of_garbage_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Headers::decode(&raw);
        let _ = Inflater::new().decompress(&raw);
        // A zlib header first, so the inflater gets past it.
        let _ = Inflater::new().decompress(&[&[0x78, 0xbb][..], &raw].concat());
    }

    #[test]
    fn header_blocks_round_trip(h in headers()) {
        let mut raw = Vec::new();
        h.encode(&mut raw);
        prop_assert_eq!(Headers::decode(&raw).unwrap(), h);
    }

    #[test]
    fn frames_round_trip(frames in proptest::collection::vec(frame(), 1..6)) {
        let (mut deflater, mut inflater) = (Deflater::new().unwrap(), Inflater::new());
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut deflater, &mut wire).unwrap();
        }
        let mut rest = wire.freeze();
        for f in &frames {
            let head = Head::parse(rest[..HEAD_LEN].try_into().unwrap());
            rest.advance(HEAD_LEN);
            let payload = rest.split_to(head.len);
            prop_assert_eq!(&decode(head, payload, &mut inflater).unwrap(), f);
        }
        prop_assert!(rest.is_empty());
    }
}
