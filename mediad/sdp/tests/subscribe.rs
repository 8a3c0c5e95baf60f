mod common;

use common::{audio_track, local, video_track};
use salon_sdp::{
    Direction, MediaKind, SdpError, Setup, check_subscribe_answer, offer_subscribe, parse,
    parse_answer, uri,
};

#[test]
fn two_tracks_parse_back() {
    let tracks = [audio_track("0", 1111), video_track("1", 2222, 3333)];
    let sdp = offer_subscribe(&tracks, &local()).unwrap();
    let o = parse(&sdp).unwrap();
    assert!(o.ice_lite);
    assert_eq!(o.setup, Setup::ActPass);
    assert_eq!(o.bundle, ["0", "1"]);
    assert_eq!(o.media.len(), 2);

    let a = &o.media[0];
    assert_eq!(
        (a.kind, a.mid.as_str(), a.direction),
        (Some(MediaKind::Audio), "0", Direction::SendOnly)
    );
    assert_eq!(a.port, 50000);
    assert_eq!(a.codecs.len(), 1);
    assert_eq!((a.codecs[0].pt, a.codecs[0].name.as_str()), (111, "opus"));
    assert_eq!(
        a.codecs[0].fmtp.as_deref(),
        Some("minptime=10;useinbandfec=1")
    );
    assert_eq!(a.codecs[0].rtcp_fb, ["transport-cc"]);
    assert_eq!(a.ssrcs, [1111]);
    assert_eq!(a.cname.as_deref(), Some("peer-a"));
    let msid = a.msid.as_ref().unwrap();
    assert_eq!(
        (msid.stream_id.as_str(), msid.track_id.as_str()),
        ("participant-a", "mic-0")
    );
    assert_eq!(a.extmap_id(uri::ABS_SEND_TIME), Some(2));
    assert_eq!(a.extmap_id(uri::TRANSPORT_CC), Some(3));
    assert_eq!(a.extmap_id(uri::AUDIO_LEVEL), Some(4));
    assert_eq!(a.extmap_id(uri::SDES_MID), None);

    let v = &o.media[1];
    assert_eq!(
        (v.kind, v.direction),
        (Some(MediaKind::Video), Direction::SendOnly)
    );
    assert_eq!(v.codecs.len(), 1);
    assert_eq!((v.codecs[0].pt, v.codecs[0].rtx_pt), (96, Some(97)));
    assert_eq!(v.codecs[0].rtcp_fb.len(), 5);
    assert_eq!(v.ssrcs, [2222, 3333]);
    assert_eq!(v.ssrc_groups[0].semantics, "FID");
    assert_eq!(v.ssrc_groups[0].ssrcs, [2222, 3333]);
    assert_eq!(v.extmaps.len(), 2);
    assert_eq!(v.extmap_id(uri::AUDIO_LEVEL), None);
    assert!(sdp.contains(
        "a=candidate:1 1 udp 2130706431 192.0.2.10 50000 typ host\r\n\
         a=candidate:2 1 tcp 1520435199 192.0.2.10 50000 typ host tcptype passive\r\n"
    ));
    assert!(sdp.contains("a=ssrc:3333 msid:participant-a cam-1\r\n"));
}

#[test]
fn removed_track_keeps_its_m_line_inactive_in_the_bundle() {
    let mut gone = audio_track("1", 4444);
    gone.active = false;
    let tracks = [audio_track("0", 1111), gone, video_track("2", 2222, 3333)];
    let sdp = offer_subscribe(&tracks, &local()).unwrap();
    let o = parse(&sdp).unwrap();
    assert_eq!(o.media.len(), 3);
    assert_eq!(o.bundle, ["0", "1", "2"]);
    let m = &o.media[1];
    assert_eq!(m.mid, "1");
    assert!(!m.is_rejected(), "an inactive line is not a rejected one");
    assert_eq!(m.direction, Direction::Inactive);
    assert!(m.ssrcs.is_empty() && m.msid.is_none());
    assert_eq!(m.codecs[0].pt, 111, "same codec when it is reused");
    assert_eq!(o.media[2].mid, "2");
    assert!(!o.media[2].is_rejected());
}

#[test]
fn an_offer_whose_tracks_all_went_keeps_its_transport() {
    // Everyone else left: every line is inactive, yet the offer keeps the
    // BUNDLE group, ICE credentials and fingerprint, and the browser's
    // answer to it parses and checks.
    let mut a = audio_track("0", 1111);
    let mut v = video_track("1", 2222, 3333);
    a.active = false;
    v.active = false;
    let tracks = [a, v];
    let offer = offer_subscribe(&tracks, &local()).unwrap();
    let o = parse(&offer).unwrap();
    assert_eq!(o.bundle, ["0", "1"]);
    assert!(o.media.iter().all(|m| !m.is_rejected()));
    assert!(o.media.iter().all(|m| m.direction == Direction::Inactive));
    assert!(offer.contains("a=rtcp-mux"));
    let answer = parse_answer(&browser_answer(&offer)).unwrap();
    assert_eq!(answer.bundle, ["0", "1"]);
    check_subscribe_answer(&tracks, &answer).unwrap();
}

#[test]
fn zero_tracks_give_an_sdp_without_m_lines() {
    let sdp = offer_subscribe(&[], &local()).unwrap();
    assert!(!sdp.contains("m="));
    assert!(!sdp.contains("a=group"));
    let o = parse(&sdp).unwrap();
    assert!(o.media.is_empty());
}

#[test]
fn invalid_tracks_are_refused() {
    let l = local();
    let dup = [audio_track("0", 1), audio_track("0", 2)];
    assert!(matches!(
        offer_subscribe(&dup, &l),
        Err(SdpError::Media { index: 1, .. })
    ));
    let mut bad_pt = audio_track("0", 1);
    bad_pt.pt = 72; // collides with RTCP under rtcp-mux
    assert!(offer_subscribe(&[bad_pt], &l).is_err());
    let mut injected = audio_track("0", 1);
    injected.track_id = "x\r\na=setup:passive".to_owned();
    assert!(offer_subscribe(&[injected], &l).is_err());
    let mut same_rtx = video_track("0", 5, 5);
    same_rtx.rtx_ssrc = Some(5);
    assert!(offer_subscribe(&[same_rtx], &l).is_err());
}

/// What Chrome answers to a subscribe offer (recvonly, setup active, no ssrcs).
fn browser_answer(offer: &str) -> String {
    let o = parse(offer).expect("our own offer parses");
    let mut s =
        String::from("v=0\r\no=- 7702351236402611735 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    if !o.bundle.is_empty() {
        s += &format!("a=group:BUNDLE {}\r\n", o.bundle.join(" "));
    }
    s += "a=msid-semantic: WMS\r\n";
    for m in &o.media {
        let c = &m.codecs[0];
        let fmts = m.formats.join(" ");
        if m.is_rejected() {
            s += &format!(
                "m={} 0 {} {fmts}\r\nc=IN IP4 0.0.0.0\r\na=mid:{}\r\na=inactive\r\n",
                m.media, m.proto, m.mid
            );
            continue;
        }
        s += &format!(
            "m={} 9 {} {fmts}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n",
            m.media, m.proto
        );
        s += "a=ice-ufrag:Qm7t\r\na=ice-pwd:Ab3dEf6hIj9kLm2nOp5qRs8t\r\na=ice-options:trickle\r\n";
        s += "a=fingerprint:sha-256 0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9\r\n";
        s += &format!(
            "a=setup:active\r\na=mid:{}\r\na=recvonly\r\na=rtcp-mux\r\n",
            m.mid
        );
        s += &format!("a=rtpmap:{} {}/{}\r\n", c.pt, c.name, c.clock_rate);
        if let Some(rtx) = c.rtx_pt {
            s += &format!("a=rtpmap:{rtx} rtx/90000\r\na=fmtp:{rtx} apt={}\r\n", c.pt);
        }
    }
    s
}

#[test]
fn matching_answer_is_accepted() {
    let mut gone = audio_track("1", 4444);
    gone.active = false;
    let tracks = [audio_track("0", 1111), gone, video_track("2", 2222, 3333)];
    let offer = offer_subscribe(&tracks, &local()).unwrap();
    let answer = parse_answer(&browser_answer(&offer)).unwrap();
    assert_eq!(answer.setup, Setup::Active);
    check_subscribe_answer(&tracks, &answer).unwrap();

    let two = [audio_track("0", 1111), video_track("1", 2222, 3333)];
    let offer = offer_subscribe(&two, &local()).unwrap();
    check_subscribe_answer(&two, &parse(&browser_answer(&offer)).unwrap()).unwrap();
}

#[test]
fn mismatched_answers_are_rejected() {
    let tracks = [
        audio_track("0", 1111),
        video_track("1", 2222, 3333),
        audio_track("2", 5555),
    ];
    let offer = offer_subscribe(&tracks, &local()).unwrap();
    let good = browser_answer(&offer);
    check_subscribe_answer(&tracks, &parse(&good).unwrap()).unwrap();

    // One m-line fewer than offered.
    assert_eq!(
        check_subscribe_answer(&tracks[..2], &parse(&good).unwrap()),
        Err(SdpError::MediaCountMismatch {
            expected: 2,
            got: 3
        })
    );
    // Mids out of order.
    let mut swapped = tracks.clone();
    swapped.swap(0, 2);
    assert!(matches!(
        check_subscribe_answer(&swapped, &parse(&good).unwrap()),
        Err(SdpError::Media { index: 0, .. })
    ));
    // Browser wants to be the DTLS server.
    let passive = good.replace("a=setup:active", "a=setup:passive");
    assert!(check_subscribe_answer(&tracks, &parse(&passive).unwrap()).is_err());
    // Browser answers sendrecv.
    let sendrecv = good.replacen("a=recvonly", "a=sendrecv", 1);
    assert!(check_subscribe_answer(&tracks, &parse(&sendrecv).unwrap()).is_err());
    // Offered payload type missing.
    let other_pt = good
        .replace("UDP/TLS/RTP/SAVPF 96 97", "UDP/TLS/RTP/SAVPF 98 97")
        .replace("a=rtpmap:96 VP8", "a=rtpmap:98 VP8");
    assert!(matches!(
        check_subscribe_answer(&tracks, &parse(&other_pt).unwrap()),
        Err(SdpError::Media { index: 1, .. })
    ));
    // An active track left out of BUNDLE.
    let unbundled = good.replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 1");
    assert!(check_subscribe_answer(&tracks, &parse(&unbundled).unwrap()).is_err());
    // Answers without fingerprint never get this far.
    let no_fp = common::without_lines(&good, |l| l.starts_with("a=fingerprint"));
    assert_eq!(parse(&no_fp), Err(SdpError::Missing("fingerprint")));
}
