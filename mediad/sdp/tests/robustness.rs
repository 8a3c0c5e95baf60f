mod common;

use std::time::{Duration, Instant};

use common::{CHROME, FIREFOX, Rng, audio_track, local, video_track, without_lines};
use salon_sdp::{
    MAX_LINE_LEN, MAX_MEDIA, MAX_SDP_LEN, SdpError, answer_publish, offer_subscribe, parse,
    parse_bytes,
};

#[test]
fn missing_fingerprint() {
    let sdp = without_lines(CHROME, |l| l.starts_with("a=fingerprint"));
    assert_eq!(parse(&sdp), Err(SdpError::Missing("fingerprint")));
    let sdp = without_lines(FIREFOX, |l| l.starts_with("a=fingerprint"));
    assert_eq!(parse(&sdp), Err(SdpError::Missing("fingerprint")));
}

#[test]
fn missing_ufrag_or_pwd() {
    let sdp = without_lines(CHROME, |l| l.starts_with("a=ice-ufrag"));
    assert_eq!(parse(&sdp), Err(SdpError::Missing("ice-ufrag")));
    let sdp = without_lines(CHROME, |l| l.starts_with("a=ice-pwd"));
    assert_eq!(parse(&sdp), Err(SdpError::Missing("ice-pwd")));
    let sdp = without_lines(CHROME, |l| l.starts_with("a=setup"));
    assert_eq!(parse(&sdp), Err(SdpError::Missing("setup")));
}

#[test]
fn bundled_m_line_may_omit_transport_but_unbundled_may_not() {
    // Only the BUNDLE-tagged m-line carries ICE/DTLS attributes.
    let mut seen = 0;
    let sdp: String = CHROME
        .split_inclusive('\n')
        .filter(|l| {
            let t = ["a=ice-ufrag", "a=ice-pwd", "a=fingerprint", "a=setup"]
                .iter()
                .any(|p| l.starts_with(p));
            if t {
                seen += 1;
            }
            !t || seen <= 4
        })
        .collect();
    let ok = parse(&sdp).unwrap();
    assert_eq!(ok.media[1].ice_ufrag, "Hx3v");
    let unbundled = sdp.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
    assert!(matches!(
        parse(&unbundled),
        Err(SdpError::Media { index: 1, .. })
    ));
}

#[test]
fn disagreeing_transport_is_refused() {
    let other = CHROME
        .replacen("a=ice-ufrag:Hx3v", "a=ice-ufrag:Zz9z", 2)
        .replacen("a=ice-ufrag:Zz9z", "a=ice-ufrag:Hx3v", 1);
    assert!(matches!(
        parse(&other),
        Err(SdpError::Media { index: 1, .. })
    ));
}

#[test]
fn garbage_ports() {
    for bad in ["9x", "+9", "-1", "70000", "", "9/2", "0x10"] {
        let sdp = CHROME.replace("m=video 9 ", &format!("m=video {bad} "));
        assert!(parse(&sdp).is_err(), "port {bad:?} accepted");
    }
    let sdp = CHROME.replace("m=video 9 ", "m=video 65535 ");
    assert_eq!(parse(&sdp).unwrap().media[1].port, 65535);
}

#[test]
fn structural_errors() {
    let cases: Vec<(String, &str)> = vec![
        (CHROME.replacen("v=0", "v=1", 1), "version"),
        (CHROME.replacen("v=0\r\n", "", 1), "no version"),
        (CHROME.replace("a=rtcp-mux\r\n", ""), "no rtcp-mux"),
        (
            CHROME
                .replace("a=mid:1", "a=mid:0")
                .replace("BUNDLE 0 1", "BUNDLE 0"),
            "duplicate mid",
        ),
        (CHROME.replace("a=mid:1\r\n", ""), "no mid"),
        (
            CHROME.replace("BUNDLE 0 1", "BUNDLE 0 7"),
            "unknown bundle mid",
        ),
        (
            CHROME.replace("a=simulcast:send f;h;q", "a=simulcast:send f;h;x"),
            "undeclared rid",
        ),
        (
            CHROME.replace("a=simulcast:send f;h;q", "a=simulcast:send rid=f;h;q"),
            "draft simulcast",
        ),
        (
            CHROME.replace("a=rid:h send", "a=rid:h sideways"),
            "rid direction",
        ),
        (
            CHROME.replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus/48000/2/1"),
            "rtpmap",
        ),
        (
            CHROME.replace("a=extmap:4 ", "a=extmap:3 "),
            "duplicate extmap id",
        ),
        (CHROME.replace("a=extmap:4 ", "a=extmap:0 "), "extmap id 0"),
        (
            CHROME.replace("UDP/TLS/RTP/SAVPF 111 63", "UDP/TLS/RTP/SAVPF 111 200"),
            "pt > 127",
        ),
        (
            CHROME.replace("UDP/TLS/RTP/SAVPF 111 63", "UDP/TLS/RTP/SAVPF 111 111"),
            "duplicate pt",
        ),
        (
            CHROME.replace("a=fingerprint:sha-256 5B:2C", "a=fingerprint:sha-256 5B2C"),
            "fingerprint hex",
        ),
        (
            CHROME.replace(":AD\r\n", ":AD:01\r\n"),
            "fingerprint length",
        ),
        (
            CHROME.replace("a=ice-pwd:Ys2pWqkV0tN1xQd8bF7mZr4L", "a=ice-pwd:short"),
            "short pwd",
        ),
        (
            CHROME.replace("a=setup:actpass", "a=setup:holdconn"),
            "setup",
        ),
        (CHROME.replace("t=0 0", "t=0 0\r\n\r\n"), "empty line"),
        (CHROME.replace("s=-", "s=-\r\nX=y"), "uppercase type"),
        (CHROME.replace("s=-", "s=-\r\nq=y"), "unknown type"),
        (
            CHROME.replace("a=rtcp-rsize", "o=- 1 1 IN IP4 0.0.0.0"),
            "o= in media",
        ),
        (CHROME.replace("s=-", "s=-\u{7}"), "control char"),
        (CHROME.replace("s=-", "s=-\r"), "stray CR"),
        (
            CHROME.replace(
                "a=group:BUNDLE 0 1",
                "a=group:BUNDLE 0 1\r\na=group:BUNDLE 0",
            ),
            "two bundles",
        ),
        (
            CHROME.replace("a=ssrc:2853417126 cname", "a=ssrc:28534171260 cname"),
            "ssrc overflow",
        ),
    ];
    for (sdp, what) in cases {
        let r = parse(&sdp);
        eprintln!("{what}: {r:?}");
        assert!(r.is_err(), "{what} accepted");
    }
}

#[test]
fn size_limits() {
    // 100k lines.
    let huge: String = CHROME.to_owned() + &"a=x-junk:1\r\n".repeat(100_000);
    assert!(matches!(parse(&huge), Err(SdpError::TooLarge { .. })));
    assert!(matches!(
        parse_bytes(huge.as_bytes()),
        Err(SdpError::TooLarge { .. })
    ));
    // One long line, under the total limit.
    let long = CHROME.replace("s=-", &format!("s={}", "x".repeat(MAX_LINE_LEN)));
    assert!(long.len() < MAX_SDP_LEN);
    assert!(matches!(
        parse(&long),
        Err(SdpError::LineTooLong { line: 3 })
    ));
    // One m-line too many.
    let mut many = String::from("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    for i in 0..=MAX_MEDIA {
        many += &format!("m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\n");
    }
    assert_eq!(parse(&many), Err(SdpError::TooManyMedia));
    // Too many ssrcs in one section.
    let ssrcs: String = (0..100)
        .map(|i| format!("a=ssrc:{i} cname:x\r\n"))
        .collect();
    let sdp = CHROME.replace("a=rtcp-rsize\r\n", &format!("a=rtcp-rsize\r\n{ssrcs}"));
    assert!(matches!(parse(&sdp), Err(SdpError::TooMany { .. })));
}

#[test]
fn non_utf8_and_junk() {
    let mut bytes = CHROME.as_bytes().to_vec();
    bytes[40] = 0xff;
    assert_eq!(parse_bytes(&bytes), Err(SdpError::NotUtf8));
    for junk in [
        &b""[..],
        b"\n",
        b"\r\n\r\n",
        b"v=0",
        b"v=0\r\n",
        b"\x00\x01\x02",
        b"=\n=\n",
        b"v=0\no=\ns=\nm=\na=\n",
        "v=0\r\n\u{e9}=x\r\n".as_bytes(),
        "a=fingerprint:sha-256 \u{20ac}\u{20ac}".as_bytes(),
    ] {
        assert!(parse_bytes(junk).is_err());
    }
    // Multibyte characters where the parser looks at fixed offsets.
    let sdp = CHROME
        .replace("a=mid:0", "a=mid:\u{20ac}")
        .replace("BUNDLE 0 1", "BUNDLE \u{20ac} 1");
    assert!(parse(&sdp).is_err());
    let sdp = CHROME.replace("a=fingerprint:sha-256 5B:", "a=fingerprint:sha-256 \u{e9}:");
    assert!(parse(&sdp).is_err());
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    const DICT: [&[u8]; 16] = [
        b"\r\n",
        b"\n",
        b":",
        b" ",
        b"/",
        b";",
        b"=",
        b"a=",
        b"m=",
        b"0",
        b"4294967296",
        b"255",
        b"a=rid:",
        b"a=simulcast:send ",
        b"a=rtpmap:",
        b"\xff",
    ];
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(64).min(len - i);
                v.drain(i..i + n);
            }
            2 => {
                let i = rng.below(len + 1);
                let word = DICT[rng.below(DICT.len())];
                v.splice(i..i, word.iter().copied());
            }
            3 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            4 if len > 0 => {
                // Duplicate a chunk (repeated lines / attributes).
                let i = rng.below(len);
                let n = rng.below(200).min(len - i);
                let chunk = v[i..i + n].to_vec();
                let j = rng.below(len + 1);
                v.splice(j..j, chunk);
            }
            5 if len > 0 => {
                v.truncate(rng.below(len));
            }
            _ => {
                // Swap two lines.
                let text = String::from_utf8_lossy(&v).into_owned();
                let mut lines: Vec<&str> = text.split('\n').collect();
                if lines.len() > 1 {
                    let a = rng.below(lines.len());
                    let b = rng.below(lines.len());
                    lines.swap(a, b);
                }
                v = lines.join("\n").into_bytes();
            }
        }
    }
    v
}

/// Seeded mutation loop: parse never panics, and every offer it accepts gets
/// an answer that parses again.
#[test]
fn random_mutations_never_panic() {
    let l = local();
    let sub = offer_subscribe(&[audio_track("0", 1), video_track("1", 2, 3)], &l).unwrap();
    let seeds: [&str; 3] = [CHROME, FIREFOX, &sub];
    let mut rng = Rng(0x5A10_2025);
    let start = Instant::now();
    let (mut runs, mut accepted) = (0u32, 0u32);
    while start.elapsed() < Duration::from_millis(1500) && runs < 200_000 {
        let base = seeds[rng.below(seeds.len())].as_bytes();
        let input = mutate(&mut rng, base);
        if let Ok(offer) = parse_bytes(&input) {
            accepted += 1;
            if let Ok(ans) = answer_publish(&offer, &l) {
                let back = parse(&ans.sdp);
                assert!(
                    back.is_ok(),
                    "answer does not reparse: {back:?}\n{}",
                    ans.sdp
                );
                assert_eq!(back.map(|b| b.media.len()).ok(), Some(offer.media.len()));
            }
        }
        runs += 1;
    }
    eprintln!(
        "{runs} mutants in {:?}, {accepted} accepted",
        start.elapsed()
    );
    assert!(runs > 500, "only {runs} runs");
    assert!(accepted > 0, "no mutant was accepted in {runs} runs");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(7);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        let n = rng.below(512);
        let mut v: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        if rng.below(2) == 0 {
            v.splice(0..0, b"v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\n".iter().copied());
        }
        let _ = parse_bytes(&v);
    }
}
