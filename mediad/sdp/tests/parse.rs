mod common;

use common::{CHROME, FIREFOX};
use salon_sdp::{Direction, MediaKind, RidDirection, Setup, parse, parse_bytes, uri};

#[test]
fn chrome_publish_offer_session_fields() {
    let sdp = parse(CHROME).unwrap();
    assert_eq!(sdp.session_id, 4215775240449105457);
    assert_eq!(sdp.session_version, 2);
    assert_eq!(sdp.bundle, ["0", "1"]);
    assert_eq!(sdp.ice_ufrag, "Hx3v");
    assert_eq!(sdp.ice_pwd.as_str(), "Ys2pWqkV0tN1xQd8bF7mZr4L");
    assert_eq!(sdp.setup, Setup::ActPass);
    assert!(!sdp.ice_lite);
    assert_eq!(sdp.fingerprint.algorithm, "sha-256");
    assert_eq!(sdp.fingerprint.bytes.len(), 32);
    assert_eq!(sdp.fingerprint.bytes[..3], [0x5B, 0x2C, 0x0E]);
    assert_eq!(sdp.fingerprint.bytes[31], 0xAD);
    assert_eq!(sdp.media.len(), 2);
}

#[test]
fn chrome_publish_offer_audio() {
    let sdp = parse(CHROME).unwrap();
    let a = &sdp.media[0];
    assert_eq!(a.kind, Some(MediaKind::Audio));
    assert_eq!(a.mid, "0");
    assert_eq!(a.port, 9);
    assert_eq!(a.proto, "UDP/TLS/RTP/SAVPF");
    assert_eq!(a.direction, Direction::SendOnly);
    assert!(a.rtcp_mux && a.rtcp_rsize);
    let pts: Vec<u8> = a.codecs.iter().map(|c| c.pt).collect();
    assert_eq!(pts, [111, 63, 9, 0, 8, 13, 110, 126]);
    let opus = &a.codecs[0];
    assert_eq!(opus.name, "opus");
    assert_eq!(opus.clock_rate, 48000);
    assert_eq!(opus.channels, Some(2));
    assert_eq!(opus.fmtp.as_deref(), Some("minptime=10;useinbandfec=1"));
    assert_eq!(opus.rtcp_fb, ["transport-cc"]);
    assert_eq!(opus.rtx_pt, None);
    assert_eq!(a.codec_by_pt(63).unwrap().fmtp.as_deref(), Some("111/111"));
    assert_eq!(a.extmap_id(uri::AUDIO_LEVEL), Some(1));
    assert_eq!(a.extmap_id(uri::ABS_SEND_TIME), Some(2));
    assert_eq!(a.extmap_id(uri::TRANSPORT_CC), Some(3));
    assert_eq!(a.extmap_id(uri::SDES_MID), Some(4));
    assert_eq!(a.ssrcs, [2853417126]);
    assert_eq!(a.cname.as_deref(), Some("qD2Ngf8Rk4wYz1Hb"));
    let msid = a.msid.as_ref().unwrap();
    assert_eq!(msid.stream_id, "3b1c8a6e-1d0f-4c2a-9a51-6c1b7a0e9f21");
    assert_eq!(msid.track_id, "8d6f2c4a-77e1-4b9b-bb0e-2f5c9d41a3e7");
    assert_eq!(a.ice_ufrag, "Hx3v");
    assert_eq!(a.setup, Setup::ActPass);
}

#[test]
fn chrome_publish_offer_simulcast_video() {
    let sdp = parse(CHROME).unwrap();
    let v = &sdp.media[1];
    assert_eq!(v.kind, Some(MediaKind::Video));
    assert_eq!(v.mid, "1");
    assert_eq!(v.direction, Direction::SendOnly);
    // rtx formats are folded into their codec.
    let names: Vec<(&str, u8, Option<u8>)> = v
        .codecs
        .iter()
        .map(|c| (c.name.as_str(), c.pt, c.rtx_pt))
        .collect();
    assert_eq!(
        names,
        [
            ("VP8", 96, Some(97)),
            ("VP9", 98, Some(99)),
            ("VP9", 100, Some(101)),
            ("AV1", 35, Some(36)),
            ("H264", 45, Some(46)),
            ("H264", 102, Some(103)),
            ("red", 116, Some(117)),
            ("ulpfec", 118, None),
        ]
    );
    let vp8 = v.codec("vp8", 90000).unwrap();
    assert_eq!(
        vp8.rtcp_fb,
        ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
    );
    assert_eq!(
        v.codec_by_pt(100).unwrap().fmtp.as_deref(),
        Some("profile-id=2")
    );
    let rids: Vec<(&str, RidDirection)> = v
        .rids
        .iter()
        .map(|r| (r.id.as_str(), r.direction))
        .collect();
    assert_eq!(
        rids,
        [
            ("f", RidDirection::Send),
            ("h", RidDirection::Send),
            ("q", RidDirection::Send)
        ]
    );
    assert_eq!(v.simulcast_send, ["f", "h", "q"]);
    assert!(v.simulcast_recv.is_empty());
    assert!(v.ssrcs.is_empty());
    assert_eq!(v.extmaps.len(), 11);
    assert_eq!(v.extmap_id(uri::RTP_STREAM_ID), Some(10));
    assert_eq!(v.extmap_id(uri::REPAIRED_RTP_STREAM_ID), Some(11));
    assert_eq!(v.extmap_id("urn:ietf:params:rtp-hdrext:toffset"), Some(14));
}

#[test]
fn lf_and_crlf_parse_identically() {
    assert!(CHROME.contains("\r\n"));
    let lf = CHROME.replace("\r\n", "\n");
    assert_eq!(parse(CHROME).unwrap(), parse(&lf).unwrap());
    // No final line ending is fine too.
    assert_eq!(parse(CHROME.trim_end()).unwrap(), parse(CHROME).unwrap());
    assert_eq!(
        parse_bytes(CHROME.as_bytes()).unwrap(),
        parse(CHROME).unwrap()
    );
}

#[test]
fn firefox_publish_offer() {
    let sdp = parse(FIREFOX).unwrap();
    assert_eq!(sdp.session_id, 5174291786133041930);
    assert_eq!(sdp.bundle, ["0", "1", "2"]);
    // Session-level, lowercase fingerprint.
    assert_eq!(sdp.fingerprint.bytes[0], 0xA1);
    assert_eq!(sdp.fingerprint.bytes[31], 0x71);
    // Media-level ICE credentials become the transport's.
    assert_eq!(sdp.ice_ufrag, "5e3a9c1f");
    assert_eq!(sdp.ice_pwd.as_str(), "8f2b0c4d6e1a3957b2c4d6e8f0a1b3c5");
    assert_eq!(sdp.media.len(), 3);

    let a = &sdp.media[0];
    assert_eq!(a.codecs[0].name, "opus");
    assert_eq!(a.codecs[0].pt, 109);
    assert_eq!(a.codecs[1].channels, Some(1));
    assert_eq!(a.extmaps[1].direction, Some(Direction::RecvOnly));
    assert_eq!(a.extmap_id(uri::SDES_MID), Some(3));
    assert_eq!(
        a.msid.as_ref().unwrap().stream_id,
        "{c4b2e0a9-6f3d-4e71-8b25-19d0a7c3e6f4}"
    );

    let v = &sdp.media[1];
    let vp8 = v.codec("VP8", 90000).unwrap();
    assert_eq!((vp8.pt, vp8.rtx_pt), (120, Some(124)));
    assert_eq!(vp8.fmtp.as_deref(), Some("max-fs=12288;max-fr=60"));
    assert_eq!(vp8.rtcp_fb.len(), 5);
    assert_eq!(v.codec_by_pt(97).unwrap().rtx_pt, Some(98));
    assert_eq!(v.ssrcs, [3371823452, 1490582216]);
    assert_eq!(v.ssrc_groups.len(), 1);
    assert_eq!(v.ssrc_groups[0].semantics, "FID");
    assert_eq!(v.ssrc_groups[0].ssrcs, [3371823452, 1490582216]);
    assert!(v.rids.is_empty());

    let d = &sdp.media[2];
    assert_eq!(d.kind, None);
    assert_eq!(d.media, "application");
    assert_eq!(d.proto, "UDP/DTLS/SCTP");
    assert_eq!(d.formats, ["webrtc-datachannel"]);
    assert!(d.codecs.is_empty());
    assert_eq!(d.direction, Direction::SendRecv);
    assert_eq!(d.ice_ufrag, "5e3a9c1f");
}

#[test]
fn fingerprint_display_is_uppercase_and_round_trips() {
    let sdp = parse(FIREFOX).unwrap();
    let shown = sdp.fingerprint.to_string();
    assert!(shown.starts_with("sha-256 A1:4F:0C:"));
    let upper = FIREFOX.replace(
        "a=fingerprint:sha-256 a1:4f:0c:9e:27:b3:d8:65:10:fe:42:7a:cc:93:5d:e0:88:1b:36:f4:c2:09:7e:ad:51:6b:e8:24:93:0f:bc:71",
        &format!("a=fingerprint:{shown}"),
    );
    assert_ne!(upper, FIREFOX);
    assert_eq!(parse(&upper).unwrap().fingerprint, sdp.fingerprint);
}

#[test]
fn ice_pwd_is_redacted_in_debug() {
    let sdp = parse(CHROME).unwrap();
    let dbg = format!("{sdp:?}");
    assert!(!dbg.contains("Ys2pWqkV0tN1xQd8bF7mZr4L"));
    assert!(dbg.contains("redacted"));
}
