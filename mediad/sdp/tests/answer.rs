mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{CHROME, FIREFOX, local};
use salon_sdp::{Direction, MediaKind, RidDirection, SdpError, Setup, answer_publish, parse};

fn m_lines(sdp: &str) -> Vec<&str> {
    sdp.lines().filter(|l| l.starts_with("m=")).collect()
}

#[test]
fn chrome_answer_accepts_opus_and_vp8_only() {
    let offer = parse(CHROME).unwrap();
    let ans = answer_publish(&offer, &local()).unwrap();
    let sdp = &ans.sdp;
    assert!(sdp.ends_with("\r\n"));
    assert!(!sdp.replace("\r\n", "").contains('\n'));
    assert_eq!(
        m_lines(sdp),
        [
            "m=audio 50000 UDP/TLS/RTP/SAVPF 111",
            "m=video 50000 UDP/TLS/RTP/SAVPF 96 97"
        ]
    );
    let rtpmaps: Vec<&str> = sdp.lines().filter(|l| l.starts_with("a=rtpmap:")).collect();
    assert_eq!(
        rtpmaps,
        [
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:96 VP8/90000",
            "a=rtpmap:97 rtx/90000"
        ]
    );
    for l in [
        "a=ice-lite",
        "a=setup:passive",
        "a=group:BUNDLE 0 1",
        "a=candidate:1 1 udp 2130706431 192.0.2.10 50000 typ host",
        "a=end-of-candidates",
        "a=fmtp:97 apt=96",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtcp-fb:96 nack pli",
        "a=rid:f recv",
        "a=rid:h recv",
        "a=rid:q recv",
        "a=simulcast:recv f;h;q",
        "a=recvonly",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "a=fingerprint:sha-256 A5:CA:EF",
    ] {
        assert!(sdp.contains(l), "missing {l}");
    }
    assert!(!sdp.contains("actpass"));
    for absent in [
        "VP9",
        "H264",
        "AV1",
        "red/",
        "toffset",
        "playout-delay",
        "extmap-allow-mixed",
        "a=sendonly",
        "a=rid:f send",
    ] {
        assert!(!sdp.contains(absent), "unexpected {absent}");
    }
    // o= sess-id fits an i64.
    assert!(sdp.contains(&format!("o=- {} 3 IN IP4", 0x0123_4567_89ab_cdef_u64)));
}

#[test]
fn chrome_answer_reports_what_was_accepted() {
    let offer = parse(CHROME).unwrap();
    let ans = answer_publish(&offer, &local()).unwrap();
    assert_eq!(ans.accepted.len(), 2);
    let a = &ans.accepted[0];
    assert_eq!(
        (a.index, a.mid.as_str(), a.kind),
        (0, "0", MediaKind::Audio)
    );
    assert!(a.receiving);
    assert_eq!(
        (
            a.codec.pt,
            a.codec.rtx_pt,
            a.codec.clock_rate,
            a.codec.channels
        ),
        (111, None, 48000, Some(2))
    );
    assert_eq!(a.extmap.audio_level, Some(1));
    assert_eq!(a.extmap.abs_send_time, Some(2));
    // transport-cc is negotiated (mediad sends feedback), REMB is not.
    assert_eq!(a.extmap.transport_cc, Some(3));
    assert_eq!(a.extmap.mid, Some(4));
    assert_eq!(a.extmap.rtp_stream_id, None);
    assert!(a.rtcp_fb.transport_cc && !a.rtcp_fb.nack);
    assert!(ans.sdp.contains("a=rtcp-fb:111 transport-cc\r\n"));
    assert!(ans.sdp.contains(
        "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"
    ));
    assert!(!ans.sdp.contains("goog-remb"));
    assert_eq!(a.ssrcs, [2853417126]);
    assert_eq!(a.cname.as_deref(), Some("qD2Ngf8Rk4wYz1Hb"));
    assert!(a.rids.is_empty());

    let v = &ans.accepted[1];
    assert_eq!(
        (v.index, v.mid.as_str(), v.kind),
        (1, "1", MediaKind::Video)
    );
    assert_eq!((v.codec.pt, v.codec.rtx_pt), (96, Some(97)));
    assert_eq!(v.extmap.mid, Some(4));
    assert_eq!(v.extmap.rtp_stream_id, Some(10));
    assert_eq!(v.extmap.repaired_rtp_stream_id, Some(11));
    assert_eq!(v.extmap.audio_level, None);
    let fb = v.rtcp_fb;
    assert!(fb.nack && fb.nack_pli && fb.ccm_fir && !fb.goog_remb && fb.transport_cc);
    assert_eq!(v.rids, ["f", "h", "q"]);
    assert!(v.ssrcs.is_empty());
    assert!(v.rtcp_rsize);
}

#[test]
fn chrome_answer_reparses() {
    let offer = parse(CHROME).unwrap();
    let l = local();
    let ans = answer_publish(&offer, &l).unwrap();
    let back = parse(&ans.sdp).unwrap();
    assert!(back.ice_lite);
    assert_eq!(back.setup, Setup::Passive);
    assert_eq!(back.ice_ufrag, l.ice_ufrag);
    assert_eq!(back.ice_pwd, l.ice_pwd);
    assert_eq!(back.fingerprint, l.fingerprint);
    assert_eq!(back.bundle, offer.bundle);
    let mids: Vec<&str> = back.media.iter().map(|m| m.mid.as_str()).collect();
    assert_eq!(mids, ["0", "1"]);
    let a = &back.media[0];
    assert_eq!(a.direction, Direction::RecvOnly);
    assert_eq!(a.codecs.len(), 1);
    assert_eq!(
        a.codecs[0].fmtp.as_deref(),
        Some("minptime=10;useinbandfec=1")
    );
    let v = &back.media[1];
    assert_eq!(v.codecs.len(), 1);
    assert_eq!((v.codecs[0].pt, v.codecs[0].rtx_pt), (96, Some(97)));
    assert_eq!(v.codecs[0].rtcp_fb.len(), 4);
    assert_eq!(v.simulcast_recv, ["f", "h", "q"]);
    assert!(v.rids.iter().all(|r| r.direction == RidDirection::Recv));
    assert_eq!(v.port, 50000);
    assert_eq!(v.extmaps.len(), 5);
}

#[test]
fn firefox_answer_rejects_data_channel_and_mirrors_extmap_direction() {
    let offer = parse(FIREFOX).unwrap();
    let ans = answer_publish(&offer, &local()).unwrap();
    assert_eq!(
        m_lines(&ans.sdp),
        [
            "m=audio 50000 UDP/TLS/RTP/SAVPF 109",
            "m=video 50000 UDP/TLS/RTP/SAVPF 120 124",
            "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
        ]
    );
    assert!(ans.sdp.contains("a=group:BUNDLE 0 1\r\n"));
    // csrc-audio-level (unsupported) and playout-delay (recvonly) are dropped.
    assert!(!ans.sdp.contains("csrc-audio-level"));
    assert!(!ans.sdp.contains("playout-delay"));
    assert_eq!(ans.accepted.len(), 2);
    assert_eq!(ans.accepted[0].extmap.mid, Some(3));
    assert_eq!(ans.accepted[1].extmap.transport_cc, Some(7));
    assert_eq!(
        ans.accepted[1].ssrc_groups[0].ssrcs,
        [3371823452, 1490582216]
    );

    let back = parse(&ans.sdp).unwrap();
    assert_eq!(back.media.len(), 3);
    assert!(back.media[2].is_rejected());
    assert_eq!(back.media[2].mid, "2");
    assert_eq!(back.media[2].direction, Direction::Inactive);

    let sendonly = FIREFOX.replace("a=extmap:1 urn", "a=extmap:1/sendonly urn");
    let ans = answer_publish(&parse(&sendonly).unwrap(), &local()).unwrap();
    assert!(
        ans.sdp
            .contains("a=extmap:1/recvonly urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n")
    );
    assert_eq!(ans.accepted[0].extmap.audio_level, Some(1));
}

#[test]
fn video_without_vp8_is_rejected_but_kept() {
    let h264_only = CHROME.replace(
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 35 36 45 46 102 103 116 117 118",
        "m=video 9 UDP/TLS/RTP/SAVPF 45 46 102 103",
    );
    let offer = parse(&h264_only).unwrap();
    let ans = answer_publish(&offer, &local()).unwrap();
    assert_eq!(ans.accepted.len(), 1);
    assert_eq!(ans.accepted[0].kind, MediaKind::Audio);
    assert_eq!(
        m_lines(&ans.sdp)[1],
        "m=video 0 UDP/TLS/RTP/SAVPF 45 46 102 103"
    );
    assert!(ans.sdp.contains("a=group:BUNDLE 0\r\n"));
    let back = parse(&ans.sdp).unwrap();
    assert_eq!(back.media.len(), 2);
    assert!(back.media[1].is_rejected());
}

#[test]
fn inactive_offer_is_answered_inactive() {
    let stopped = CHROME.replacen("a=sendonly", "a=inactive", 1);
    let ans = answer_publish(&parse(&stopped).unwrap(), &local()).unwrap();
    assert!(!ans.accepted[0].receiving);
    assert!(ans.accepted[1].receiving);
    let back = parse(&ans.sdp).unwrap();
    assert_eq!(back.media[0].direction, Direction::Inactive);
    assert_eq!(back.media[1].direction, Direction::RecvOnly);
}

#[test]
fn a_bundle_only_section_is_accepted() {
    // Firefox offers a transceiver added to a bundled session (a screen
    // share) as `m=video 0 … a=bundle-only` (RFC 8843 §7.2).
    let screen: String = FIREFOX
        .lines()
        .skip_while(|l| !l.starts_with("m=video"))
        .take_while(|l| !l.starts_with("m=application"))
        .filter(|l| !l.starts_with("a=ssrc") && !l.starts_with("a=msid"))
        .map(|l| match l {
            "a=mid:1" => "a=mid:3\r\na=bundle-only".to_owned(),
            l => l.replacen("m=video 9 ", "m=video 0 ", 1),
        })
        .map(|l| l + "\r\n")
        .collect();
    let offer = FIREFOX.replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 1 2 3") + &screen;
    let parsed = parse(&offer).unwrap();
    let m = parsed.media_by_mid("3").unwrap();
    assert!(m.bundle_only && !m.is_rejected());
    let ans = answer_publish(&parsed, &local()).unwrap();
    assert!(
        ans.accepted.iter().any(|a| a.mid == "3" && a.receiving),
        "the bundle-only video is received: {:?}",
        ans.accepted.iter().map(|a| &a.mid).collect::<Vec<_>>()
    );
    let answer = parse(&ans.sdp).unwrap();
    assert!(answer.bundle.contains(&"3".to_owned()));
    assert!(!answer.media_by_mid("3").unwrap().is_rejected());
}

#[test]
fn m_line_outside_bundle_is_rejected() {
    let offer = parse(&CHROME.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0")).unwrap();
    let ans = answer_publish(&offer, &local()).unwrap();
    assert_eq!(ans.accepted.len(), 1);
    assert!(m_lines(&ans.sdp)[1].starts_with("m=video 0 "));
}

#[test]
fn without_bundle_only_the_first_m_line_is_accepted() {
    let offer = parse(&CHROME.replace("a=group:BUNDLE 0 1\r\n", "")).unwrap();
    assert!(offer.bundle.is_empty());
    let ans = answer_publish(&offer, &local()).unwrap();
    assert_eq!(ans.accepted.len(), 1);
    assert!(!ans.sdp.contains("a=group"));
    parse(&ans.sdp).unwrap();
}

#[test]
fn passive_tcp_candidate_follows_the_udp_one() {
    let ans = answer_publish(&parse(CHROME).unwrap(), &local()).unwrap();
    let cands: Vec<&str> = ans
        .sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:") || *l == "a=end-of-candidates")
        .take(3)
        .collect();
    assert_eq!(
        cands,
        [
            "a=candidate:1 1 udp 2130706431 192.0.2.10 50000 typ host",
            "a=candidate:2 1 tcp 1520435199 192.0.2.10 50000 typ host tcptype passive",
            "a=end-of-candidates",
        ]
    );
    parse(&ans.sdp).unwrap();

    let mut l = local();
    l.tcp_candidate_port = None;
    let ans = answer_publish(&parse(CHROME).unwrap(), &l).unwrap();
    assert!(
        !ans.sdp.contains(" tcp "),
        "no TCP listener, no TCP candidate"
    );
}

#[test]
fn passive_offerer_is_refused() {
    let offer = parse(&CHROME.replace("a=setup:actpass", "a=setup:passive")).unwrap();
    assert!(matches!(
        answer_publish(&offer, &local()),
        Err(SdpError::Unsupported(_))
    ));
}

#[test]
fn ipv6_candidate() {
    let mut l = local();
    l.candidate_ips = vec![IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7))];
    let ans = answer_publish(&parse(CHROME).unwrap(), &l).unwrap();
    assert!(ans.sdp.contains("c=IN IP6 2001:db8::7\r\n"));
    assert!(
        ans.sdp
            .contains("a=candidate:1 1 udp 2130706431 2001:db8::7 50000 typ host\r\n")
    );
    parse(&ans.sdp).unwrap();
}

/// An IPv4 and an IPv6 address (a dual-stack host): four candidates, the
/// IPv6 UDP one first and a little preferred (RFC 8421), every UDP one
/// above every TCP one (RFC 6544), each address and protocol with its own
/// foundation; `c=` names the IPv6 address.
#[test]
fn dual_stack_candidates() {
    let mut l = local();
    l.candidate_ips = vec![
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
    ];
    let ans = answer_publish(&parse(CHROME).unwrap(), &l).unwrap();
    let first = ans.sdp.find("a=candidate:").unwrap();
    let lines: Vec<&str> = ans.sdp[first..]
        .lines()
        .take_while(|l| l.starts_with("a=candidate:"))
        .collect();
    assert_eq!(
        lines,
        [
            "a=candidate:1 1 udp 2130706431 2001:db8::7 50000 typ host",
            "a=candidate:3 1 udp 2130706175 192.0.2.10 50000 typ host",
            "a=candidate:2 1 tcp 1520435199 2001:db8::7 50000 typ host tcptype passive",
            "a=candidate:4 1 tcp 1520434943 192.0.2.10 50000 typ host tcptype passive",
        ]
    );
    // Priorities: type preference and local preference as RFC 8445 reads
    // them back.
    let prio = |l: &str| l.split(' ').nth(3).unwrap().parse::<u32>().unwrap();
    let p: Vec<u32> = lines.iter().map(|l| prio(l)).collect();
    assert!(p[0] > p[1] && p[1] > p[2] && p[2] > p[3], "{p:?}");
    assert_eq!((p[0] >> 24, (p[0] >> 8) & 0xffff), (126, 65535));
    assert_eq!((p[1] >> 24, (p[1] >> 8) & 0xffff), (126, 65534));
    assert_eq!((p[3] >> 24, (p[3] >> 8) & 0xffff), (90, (4 << 13) + 8190));
    assert!(ans.sdp.contains("c=IN IP6 2001:db8::7\r\n"));
    // One end-of-candidates per m-line.
    let ends = ans.sdp.matches("a=end-of-candidates").count();
    assert_eq!(ends, ans.sdp.matches("\nm=").count());
    parse(&ans.sdp).unwrap();
}

#[test]
fn candidate_addresses_are_checked() {
    let offer = parse(CHROME).unwrap();
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    for ips in [
        vec![],
        vec![v4, v4],
        vec![v4, IpAddr::V6(Ipv6Addr::UNSPECIFIED)],
        (1..=5)
            .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
            .collect(),
    ] {
        let mut l = local();
        l.candidate_ips = ips.clone();
        assert_eq!(
            answer_publish(&offer, &l),
            Err(SdpError::InvalidLocal("candidate address")),
            "{ips:?}"
        );
    }
}

#[test]
fn invalid_local_transport_is_refused() {
    let offer = parse(CHROME).unwrap();
    let mut l = local();
    l.ice_ufrag = "a b\r\n".to_owned();
    assert_eq!(
        answer_publish(&offer, &l),
        Err(SdpError::InvalidLocal("ice ufrag"))
    );
    let mut l = local();
    l.fingerprint.bytes.pop();
    assert_eq!(
        answer_publish(&offer, &l),
        Err(SdpError::InvalidLocal("fingerprint"))
    );
    let mut l = local();
    l.candidate_port = 0;
    assert_eq!(
        answer_publish(&offer, &l),
        Err(SdpError::InvalidLocal("candidate port"))
    );
}
