//! HTTPS in the gateway, over real loopback sockets: a test CA and server
//! certificate made here (rcgen), a rustls client that trusts only that CA.
//! A page, a WebSocket join, HSTS, the origin check over TLS; a handshake
//! that never finishes is closed and counts against the per-address cap;
//! reloading swaps the certificate (and a bad one keeps the old); SIGHUP
//! reloads; the redirect listener.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use salon_gateway::control::Command;
use salon_gateway::{
    MediaControl, RedirectListener, ServeOptions, ServerCert, TlsOptions, media_event_channel,
    serve,
};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

struct NoMedia;

impl MediaControl for NoMedia {
    fn send(&self, _cmd: Command) {}
    fn metrics_text(&self) -> String {
        String::new()
    }
}

/// A CA made for one test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for `localhost` and 127.0.0.1: (cert PEM, key
    /// PEM, cert DER).
    fn server(&self, cn: &str) -> (String, String, CertificateDer<'static>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            pem("CERTIFICATE", cert.der()),
            pem("PRIVATE KEY", &key.serialize_der()),
            cert.der().clone(),
        )
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "salon-tls-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes the pair as `cert.pem` and `key.pem`; returns their paths.
    fn write_pair(&self, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let c = self.0.join("cert.pem");
        let k = self.0.join("key.pem");
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Harness {
    addr: SocketAddr,
    cert: Arc<ServerCert>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: TempDir,
}

impl Harness {
    /// A gateway on 127.0.0.1 serving HTTPS with a certificate of `ca`.
    async fn start(ca: &TestCa, tweak: impl FnOnce(&mut ServeOptions)) -> Self {
        let dir = TempDir::new("srv");
        let (cert_pem, key_pem, _) = ca.server("salon-test-1");
        let (c, k) = dir.write_pair(&cert_pem, &key_pem);
        let cert = ServerCert::load(&c, &k).unwrap();
        let mut opts = ServeOptions {
            tls: Some(TlsOptions::new(cert.clone())),
            ..ServeOptions::default()
        };
        tweak(&mut opts);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_events, rx) = media_event_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Arc::new(NoMedia), rx, opts, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            cert,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    async fn tls(&self, ca: &CertificateDer<'static>) -> std::io::Result<TlsStream<TcpStream>> {
        tls_connect(self.addr, ca).await
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve stops")
            .unwrap()
            .unwrap();
    }
}

/// A rustls client that trusts `ca` only, offering ALPN `h2` and
/// `http/1.1`, to `localhost`.
async fn tls_connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// One HTTP/1.1 request (`Connection: close`) over `io`: status and the
/// head's text, lowercased.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, request: &str) -> (u16, String) {
    io.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    // A TLS peer that closes without close_notify is an error here: what
    // was read until then is the answer.
    let _ = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut buf))
        .await
        .expect("an answer in time");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = text.split_once("\r\n\r\n").map_or(&*text, |(h, _)| h);
    (status, head.to_ascii_lowercase())
}

fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

async fn recv(ws: &mut Wss) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn page_websocket_and_hsts_over_tls() {
    let ca = TestCa::new("Salon test CA");
    let h = Harness::start(&ca, |_| {}).await;
    let host = format!("localhost:{}", h.addr.port());

    // A page, with HSTS; ALPN settles on HTTP/1.1 (WebSocket upgrades).
    let tls = h.tls(&ca.der()).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (status, head) = exchange(tls, &get(&host, "/Salle-1")).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("strict-transport-security: max-age=31536000\r\n"),
        "{head}"
    );
    assert!(head.contains("content-type: text/html"), "{head}");

    // A WebSocket join over TLS, its Origin the page's.
    use tungstenite::client::IntoClientRequest as _;
    let mut req = format!("wss://{host}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", format!("https://{host}").parse().unwrap());
    let (mut ws, res) = client_async(req, h.tls(&ca.der()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    ws.send(Message::text(
        json!({"type":"join","room":"Salle-1","name":"Ana"}).to_string(),
    ))
    .await
    .unwrap();
    let v = recv(&mut ws).await;
    assert_eq!(v["type"], "joined", "{v}");
    drop(ws);

    // Another site's page: refused before the upgrade.
    let mut req = format!("wss://{host}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match client_async(req, h.tls(&ca.der()).await.unwrap()).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }

    // A client that trusts another CA does not get in.
    let other = TestCa::new("Another CA");
    assert!(h.tls(&other.der()).await.is_err());

    // Plain HTTP on the HTTPS port is not served.
    let tcp = TcpStream::connect(h.addr).await.unwrap();
    let (status, _) = exchange(tcp, &get(&host, "/")).await;
    assert_eq!(status, 0, "no HTTP answer on the TLS port");
    h.stop().await;
}

#[tokio::test]
async fn hsts_can_be_turned_off() {
    let ca = TestCa::new("Salon test CA");
    let h = Harness::start(&ca, |o| {
        if let Some(t) = &mut o.tls {
            t.hsts_max_age = None;
        }
    })
    .await;
    let host = format!("localhost:{}", h.addr.port());
    let (status, head) = exchange(h.tls(&ca.der()).await.unwrap(), &get(&host, "/")).await;
    assert_eq!(status, 200);
    assert!(!head.contains("strict-transport-security"), "{head}");
    h.stop().await;
}

#[tokio::test]
async fn stalled_handshake_is_closed_and_counts_against_the_address_cap() {
    let ca = TestCa::new("Salon test CA");
    let h = Harness::start(&ca, |o| {
        o.max_http_per_ip = 1;
        if let Some(t) = &mut o.tls {
            t.handshake_timeout = Duration::from_millis(500);
        }
    })
    .await;
    // A client that connects and never says hello.
    let started = Instant::now();
    let mut stalled = TcpStream::connect(h.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Meanwhile it holds the address's only place: the next connection is
    // closed at accept.
    let err = h.tls(&ca.der()).await;
    assert!(
        err.is_err(),
        "a second connection from the address is refused"
    );

    // The stalled one is closed at the timeout.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf))
        .await
        .expect("closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Its place came back.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let host = format!("localhost:{}", h.addr.port());
    let (status, _) = exchange(h.tls(&ca.der()).await.unwrap(), &get(&host, "/")).await;
    assert_eq!(status, 200);
    h.stop().await;
}

fn leaf_cn(der: &CertificateDer<'_>) -> bool {
    // The test leaves differ by common name; compare bytes instead of
    // parsing: the name is in the DER as-is.
    der.as_ref()
        .windows(b"salon-test-2".len())
        .any(|w| w == b"salon-test-2")
}

async fn served_leaf(addr: SocketAddr, ca: &CertificateDer<'static>) -> CertificateDer<'static> {
    let tls = tls_connect(addr, ca).await.unwrap();
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .unwrap()
        .clone()
        .into_owned()
}

#[tokio::test]
async fn reload_swaps_the_certificate_and_a_bad_one_keeps_the_old() {
    let ca = TestCa::new("Salon test CA");
    let h = Harness::start(&ca, |_| {}).await;
    let (c, k) = (h._dir.0.join("cert.pem"), h._dir.0.join("key.pem"));
    let first = served_leaf(h.addr, &ca.der()).await;
    assert!(!leaf_cn(&first));

    // A renewed certificate (new key too), then a reload.
    let (cert2, key2, der2) = ca.server("salon-test-2");
    std::fs::write(&c, &cert2).unwrap();
    std::fs::write(&k, &key2).unwrap();
    h.cert.reload().unwrap();
    let second = served_leaf(h.addr, &ca.der()).await;
    assert_eq!(second, der2, "the new certificate is served");
    assert_eq!(h.cert.leaf(), Some(der2.clone()));

    // A broken certificate file, a key that is not the certificate's, a
    // missing key: each refused, the last good pair still served.
    let bad: [(&str, String); 3] = [
        (
            "cert",
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_owned(),
        ),
        ("key", ca.server("other").1),
        ("key", String::new()),
    ];
    for (which, text) in bad {
        std::fs::write(&c, &cert2).unwrap();
        std::fs::write(&k, &key2).unwrap();
        std::fs::write(if which == "cert" { &c } else { &k }, text).unwrap();
        assert!(h.cert.reload().is_err(), "{which}");
        assert_eq!(served_leaf(h.addr, &ca.der()).await, der2);
    }
    std::fs::remove_file(&c).unwrap();
    assert!(h.cert.reload().is_err(), "missing file");
    assert_eq!(served_leaf(h.addr, &ca.der()).await, der2);
    h.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let ca = TestCa::new("Salon test CA");
    let h = Harness::start(&ca, |o| o.reload_on_sighup = true).await;
    // Once a handshake is served, serve() listens for SIGHUP.
    let _ = served_leaf(h.addr, &ca.der()).await;
    let (cert2, key2, der2) = ca.server("salon-test-2");
    std::fs::write(h._dir.0.join("cert.pem"), &cert2).unwrap();
    std::fs::write(h._dir.0.join("key.pem"), &key2).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(5);
    while served_leaf(h.addr, &ca.der()).await != der2 {
        assert!(Instant::now() < until, "not reloaded after SIGHUP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stop().await;
}

#[tokio::test]
async fn redirect_listener_sends_allowed_hosts_to_https() {
    let ca = TestCa::new("Salon test CA");
    let redirect = RedirectListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let raddr = redirect.local_addr().unwrap();
    let h = Harness::start(&ca, move |o| o.redirect = Some(redirect)).await;
    let port = h.addr.port();

    let plain = |req: String| async move {
        let tcp = TcpStream::connect(raddr).await.unwrap();
        exchange(tcp, &req).await
    };
    let (status, head) = plain(get("localhost:80", "/Salle-1?lang=en")).await;
    assert_eq!(status, 308, "{head}");
    assert!(
        head.contains(&format!(
            "\r\nlocation: https://localhost:{port}/salle-1?lang=en\r\n"
        )),
        "{head}"
    );
    assert!(!head.contains("strict-transport-security"), "{head}");
    let (status, head) = plain(get("127.0.0.1", "/")).await;
    assert_eq!(status, 308);
    assert!(head.contains(&format!("\r\nlocation: https://127.0.0.1:{port}/\r\n")));

    // A Host the server does not serve is never reflected.
    for host in ["evil.example", "evil.example:80", "localhost.evil.example"] {
        let (status, head) = plain(get(host, "/")).await;
        assert_eq!(status, 421, "{host}: {head}");
        assert!(!head.contains("\r\nlocation:"), "{head}");
    }
    let (status, _) = plain("GET / HTTP/1.0\r\n\r\n".to_owned()).await;
    assert_eq!(status, 421, "no Host at all");
    h.stop().await;
}

#[tokio::test]
async fn redirect_needs_tls_and_named_hosts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_events, rx) = media_event_channel();
    let opts = ServeOptions {
        redirect: Some(RedirectListener::bind("127.0.0.1:0".parse().unwrap()).unwrap()),
        ..ServeOptions::default()
    };
    let err = serve(listener, Arc::new(NoMedia), rx, opts, async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTPS"), "{err}");
}

const SALON: &str = env!("CARGO_BIN_EXE_salon");

/// The `salon` binary with these extra flags on free loopback ports (admin
/// listener off); returns the child and its first `lines` stdout lines.
fn salon(args: &[&std::ffi::OsStr], lines: usize) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(SALON)
        .args(["--listen", "127.0.0.1:0", "--media-port", "0"])
        .args(["--io-backend", "epoll", "--admin-listen", "off", "--policy"])
        .arg(format!("{}/../lua/open.lua", env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        got.push(line.trim_end().to_owned());
    }
    (child, got)
}

#[tokio::test]
async fn the_binary_serves_https_redirects_and_reloads_on_sighup() {
    let ca = TestCa::new("Salon test CA");
    let dir = TempDir::new("bin");
    let (cert1, key1, der1) = ca.server("salon-test-1");
    let (c, k) = dir.write_pair(&cert1, &key1);
    let (mut child, lines) = salon(
        &[
            "--tls-cert".as_ref(),
            c.as_os_str(),
            "--tls-key".as_ref(),
            k.as_os_str(),
            "--redirect-http".as_ref(),
            "127.0.0.1:0".as_ref(),
        ],
        3,
    );
    let addr: SocketAddr = lines[0]
        .strip_prefix("Salon: https://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .parse()
        .unwrap();
    assert!(lines[1].starts_with(&format!("Agent (moderator) link: https://{addr}/")));
    let raddr: SocketAddr = lines[2]
        .strip_prefix("Salon redirect: http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .parse()
        .unwrap();

    let host = format!("localhost:{}", addr.port());
    let (status, head) = exchange(
        tls_connect(addr, &ca.der()).await.unwrap(),
        &get(&host, "/"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(head.contains("strict-transport-security: max-age=31536000\r\n"));
    let tcp = TcpStream::connect(raddr).await.unwrap();
    let (status, head) = exchange(tcp, &get("localhost", "/Salle")).await;
    assert_eq!(status, 308);
    assert!(head.contains(&format!(
        "\r\nlocation: https://localhost:{}/salle\r\n",
        addr.port()
    )));

    let hup = |pid: u32| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    // A broken certificate and SIGHUP: the old one is still served.
    std::fs::write(&c, "not a certificate").unwrap();
    hup(child.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_leaf(addr, &ca.der()).await, der1);
    // A renewed one and SIGHUP: served from the next handshake on.
    let (cert2, key2, der2) = ca.server("salon-test-2");
    dir.write_pair(&cert2, &key2);
    hup(child.id());
    let until = Instant::now() + Duration::from_secs(5);
    while served_leaf(addr, &ca.der()).await != der2 {
        assert!(Instant::now() < until, "not reloaded after SIGHUP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_binary_refuses_half_a_tls_config() {
    for args in [
        &["--tls-cert", "/nonexistent/cert.pem"][..],
        &["--tls-key", "/nonexistent/key.pem"][..],
        &["--redirect-http", "127.0.0.1:0"][..],
    ] {
        let out = std::process::Command::new(SALON)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "off"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing served");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--tls-"), "{args:?}: {err}");
    }
    // Both given but unreadable: a start-up error naming the flags.
    let out = std::process::Command::new(SALON)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--media-port",
            "0",
        ])
        .arg("--policy")
        .arg(format!("{}/../lua/open.lua", env!("CARGO_MANIFEST_DIR")))
        .args([
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-cert") && err.contains("/nonexistent/cert.pem"),
        "{err}"
    );
}
