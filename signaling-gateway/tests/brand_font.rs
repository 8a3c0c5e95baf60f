//! `--brand-font`: a woff2 the operator owns, checked at start (signature
//! `wOF2`, at most 1 MiB) and served at `/brand/font` as `font/woff2`;
//! `/config.json` names it only when it is configured.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const SALON: &str = env!("CARGO_BIN_EXE_salon");
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!("salon-font-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A file with the woff2 header's first fields (signature, flavor, length):
/// what the gateway checks; no browser renders it in these tests.
fn woff2_like(len: usize) -> Vec<u8> {
    let mut v = b"wOF2\x00\x01\x00\x00".to_vec();
    v.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
    v.resize(len, 0);
    v
}

fn check(font: &std::path::Path) -> Output {
    let mut cmd = Command::new(SALON);
    cmd.args(["config", "check", "--policy"])
        .arg(format!("{REPO}/lua/policy.lua"))
        .arg("--brand-font")
        .arg(font);
    for (k, _) in std::env::vars() {
        if k.starts_with("SALON_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().unwrap()
}

/// GET `path`: the status line, the headers (lower case) and the body.
fn http_get(addr: &str, path: &str) -> (String, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: {read:?}, {} bytes", raw.len()));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let (status, headers) = head.split_once("\r\n").unwrap();
    (
        status.to_owned(),
        headers.to_ascii_lowercase(),
        raw[split + 4..].to_vec(),
    )
}

/// A running `salon`, its address, and its stdout (kept open: the server
/// would get EPIPE on its next line).
type Running = (
    std::process::Child,
    String,
    BufReader<std::process::ChildStdout>,
);

/// Runs `salon` with `args` on loopback.
fn start(args: &[&std::ffi::OsStr]) -> Running {
    let mut child = Command::new(SALON)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--media-port",
            "0",
            "--admin-listen",
            "off",
        ])
        .args(["--io-backend", "epoll", "--policy"])
        .arg(format!("{REPO}/lua/policy.lua"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let url = first.trim().strip_prefix("Salon: ").unwrap().to_owned();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    (child, addr, out)
}

#[test]
fn a_woff2_is_served_as_font_woff2_and_named_in_config_json() {
    let d = dir();
    let font = d.join("brand.woff2");
    let bytes = woff2_like(4096);
    std::fs::write(&font, &bytes).unwrap();
    let (mut child, addr, _out) = start(&["--brand-font".as_ref(), font.as_os_str()]);
    let (status, headers, body) = http_get(&addr, "/brand/font");
    let (_, _, config) = http_get(&addr, "/config.json");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(status.contains(" 200 "), "{status}");
    assert!(headers.contains("content-type: font/woff2"), "{headers}");
    assert!(
        headers.contains("x-content-type-options: nosniff"),
        "{headers}"
    );
    assert_eq!(body, bytes);
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["brand"]["font"], "/brand/font");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn without_the_flag_there_is_no_font() {
    let (mut child, addr, _out) = start(&[]);
    let (status, _, _) = http_get(&addr, "/brand/font");
    let (_, _, config) = http_get(&addr, "/config.json");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(status.contains(" 404 "), "{status}");
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert!(config["brand"]["font"].is_null(), "{config}");
}

#[test]
fn a_file_that_is_not_woff2_or_too_big_stops_the_start() {
    let d = dir();
    let ok = d.join("ok.woff2");
    std::fs::write(&ok, woff2_like(1024)).unwrap();
    let out = check(&ok);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A TrueType file renamed .woff2, and an HTML error page saved as one.
    for (name, bytes) in [
        ("ttf.woff2", b"\x00\x01\x00\x00\x00\x0e\x00\x80".to_vec()),
        ("page.woff2", b"<!doctype html><title>404</title>".to_vec()),
        ("big.woff2", woff2_like(1024 * 1024 + 1)),
    ] {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = check(&path);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} accepted");
        assert!(err.contains("--brand-font"), "{name}: {err}");
        let why = if name == "big.woff2" {
            "over 1024 KiB"
        } else {
            "wOF2"
        };
        assert!(err.contains(why), "{name}: {err}");
    }
    std::fs::remove_dir_all(d).unwrap();
}
