//! The `salon` binary: dev agent link, `--auth-config` + `salon token`,
//! `--policy` errors at start, `accept` backing off when out of descriptors.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};

const SALON: &str = env!("CARGO_BIN_EXE_salon");

fn repo(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Starts salon; returns the child and its first `lines` stdout lines.
fn start(args: &[&str], lines: usize) -> (Child, Vec<String>) {
    let mut child = Command::new(SALON)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--media-port",
            "0",
            "--io-backend",
            "epoll",
            "--admin-listen",
            "off",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        got.push(line.trim_end().to_owned());
    }
    (child, got)
}

async fn ws(host: &str) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(host).await.unwrap();
    client_async(format!("ws://{host}/ws"), tcp)
        .await
        .unwrap()
        .0
}

async fn ask(ws: &mut WebSocketStream<TcpStream>, v: Value) -> Value {
    ws.send(Message::text(v.to_string())).await.unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn dev_link_opens_a_room_as_moderator_and_guests_wait() {
    let (child, lines) = start(&["--policy", &repo("lua/policy.lua")], 2);
    let base = lines[0]
        .strip_prefix("Salon: http://")
        .unwrap()
        .trim_end_matches('/');
    let link = lines[1]
        .strip_prefix("Agent (moderator) link: http://")
        .unwrap();
    let (path, jwt) = link.split_once("#jwt=").unwrap();
    let room = path.split_once('/').unwrap().1;
    assert!(room.starts_with("Reunion-"), "{room}");
    let host = base.to_owned();
    let mut guest = ws(&host).await;
    let v = ask(&mut guest, json!({"type":"join","room":room,"name":"Tôt"})).await;
    assert_eq!(
        (v["type"].as_str(), v["code"].as_str()),
        (Some("error"), Some("denied"))
    );
    let mut agent = ws(&host).await;
    let v = ask(
        &mut agent,
        json!({"type":"join","room":room,"name":"Agent","jwt":jwt}),
    )
    .await;
    assert_eq!(
        (v["type"].as_str(), v["role"].as_str()),
        (Some("joined"), Some("moderator"))
    );
    // A failed join makes the next one on that socket wait 0.25 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = ask(&mut guest, json!({"type":"join","room":room,"name":"Tôt"})).await;
    assert_eq!(v["type"], "lobby");
    stop(child);
}

#[tokio::test]
async fn token_subcommand_mints_for_an_auth_config() {
    let dir = std::env::temp_dir().join(format!("salon-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), "cli-test-secret\n").unwrap();
    let config = dir.join("auth.toml");
    std::fs::write(
        &config,
        "issuers = [\"ops\"]\naudiences = [\"salon\"]\n\n[[keys]]\nid = \"k\"\nalgorithms = [\"HS256\"]\nsecret_file = \"secret\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let token = |args: &[&str]| {
        let out = Command::new(SALON)
            .arg("token")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let moderator = token(&[
        "--auth-config",
        config,
        "--room",
        "Conseil",
        "--name",
        "Camille",
        "--moderator",
    ]);
    let (child, lines) = start(
        &["--policy", &repo("lua/policy.lua"), "--auth-config", config],
        1,
    );
    assert_eq!(lines.len(), 1);
    let host = lines[0]
        .strip_prefix("Salon: http://")
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let mut a = ws(&host).await;
    // Wrong room for this token.
    let v = ask(
        &mut a,
        json!({"type":"join","room":"Autre","name":"Camille","jwt":moderator}),
    )
    .await;
    assert_eq!(v["code"], "auth-failed");
    // A failed join makes the next one on that socket wait 0.25 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = ask(
        &mut a,
        json!({"type":"join","room":"Conseil","name":"Camille","jwt":moderator}),
    )
    .await;
    assert_eq!(v["role"], "moderator");
    // A token from --secret-file with another issuer is refused.
    let secret = dir.join("secret");
    let other = token(&[
        "--secret-file",
        secret.to_str().unwrap(),
        "--room",
        "*",
        "--name",
        "X",
    ]);
    let mut b = ws(&host).await;
    let v = ask(
        &mut b,
        json!({"type":"join","room":"Conseil","name":"X","jwt":other}),
    )
    .await;
    assert_eq!(v["code"], "auth-failed");
    assert!(v["message"].as_str().unwrap().contains("issuer"));
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_policy_stops_the_start_with_the_lua_message() {
    let dir = std::env::temp_dir().join(format!("salon-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.lua"), "return {").unwrap();
    let out = Command::new(SALON)
        .args(["--listen", "127.0.0.1:0", "--media-port", "0"])
        .args(["--admin-listen", "off", "--policy"])
        .arg(dir.join("policy.lua"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no URL printed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("syntax error") && err.contains("policy.lua:1"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn out_of_descriptors_accept_backs_off_and_members_carry_on() {
    // `ulimit -n 64`: a few dozen connections exhaust salon's descriptors.
    let script = format!(
        "ulimit -n 64 && exec '{SALON}' --listen 127.0.0.1:0 --media-port 0 \
         --io-backend epoll --admin-listen off --policy '{}'",
        repo("lua/open.lua")
    );
    /// Killed even if the test fails half-way.
    struct Salon(Child);
    impl Drop for Salon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Salon(
        Command::new("sh")
            .args(["-c", &script])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let host = line
        .trim_end()
        .strip_prefix("Salon: http://")
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let warnings = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let err = child.0.stderr.take().unwrap();
    let sink = warnings.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let mut a = ws(&host).await;
    let mut b = ws(&host).await;
    assert_eq!(
        ask(&mut a, json!({"type":"join","room":"R","name":"Ana"})).await["type"],
        "joined"
    );
    assert_eq!(
        ask(&mut b, json!({"type":"join","room":"R","name":"Bob"})).await["type"],
        "joined"
    );
    // 100 idle connections: salon runs out of descriptors.
    let mut flood = Vec::new();
    for _ in 0..100 {
        flood.push(TcpStream::connect(&host).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failures = |w: &[String]| w.iter().filter(|l| l.contains("accept failed")).count();
    let n = failures(&warnings.lock().unwrap());
    // Backed off (10 ms doubling to 1 s), not every 50 ms: a dozen at most.
    assert!((1..=15).contains(&n), "{n} accept failures logged");
    // The members carry on (`a` first hears `b` arrive; each then gets
    // the chat before the error its `dance` earns).
    let m = ask(&mut a, json!({"type":"chat","text":"toujours là"})).await;
    assert_eq!(m["type"], "participant-joined");
    for ws in [&mut a, &mut b] {
        let m = ask(ws, json!({"type":"dance"})).await;
        assert_eq!(m["text"], "toujours là", "{m}");
    }
    // Descriptors back: new people get in again.
    drop(flood);
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(Ok(tcp)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&host)).await
            && let Ok(Ok((ws, _))) = tokio::time::timeout(
                Duration::from_secs(2),
                client_async(format!("ws://{host}/ws"), tcp),
            )
            .await
        {
            again = Some(ws);
            break;
        }
    }
    let mut c = again.expect("a new socket once descriptors are back");
    assert_eq!(
        ask(&mut c, json!({"type":"join","room":"R","name":"Cy"})).await["type"],
        "joined"
    );
    drop(child);
}

/// `--turn-url` ×2, `--turn-secret-file`, `--turn-ttl-secs`: a member's
/// `joined` holds a credential coturn would accept for it; the metrics
/// count it; the secret is in no log line (debug level), and a secret too
/// short stops the start without printing it.
#[tokio::test]
async fn turn_flags_hand_out_credentials_and_never_log_the_secret() {
    use base64::Engine as _;
    let dir = std::env::temp_dir().join(format!("salon-cli-turn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = "cli-test-turn-secret-0123456789";
    std::fs::write(dir.join("turn-secret"), format!("{secret}\n")).unwrap();
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut child = Command::new(SALON)
        .args(["--listen", "127.0.0.1:0", "--media-port", "0"])
        .args(["--io-backend", "epoll", "--admin-listen", "127.0.0.1:0"])
        .args(["--policy", &repo("lua/open.lua")])
        .args(["--turn-url", "turn:127.0.0.5:3478?transport=udp"])
        .args(["--turn-url", "turns:127.0.0.5:5349?transport=tcp"])
        .args(["--turn-ttl-secs", "600", "--turn-secret-file"])
        .arg(dir.join("turn-secret"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        lines.push(line.trim_end().to_owned());
    }
    let host = lines[0]
        .strip_prefix("Salon: http://")
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let admin = lines[2]
        .strip_prefix("Salon admin: http://")
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let mut ana = ws(&host).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v = ask(&mut ana, json!({"type":"join","room":"Turn","name":"Ana"})).await;
    assert_eq!(v["type"], "joined");
    let servers = v["ice_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(
        servers[0]["urls"],
        json!([
            "turn:127.0.0.5:3478?transport=udp",
            "turns:127.0.0.5:5349?transport=tcp"
        ])
    );
    let username = servers[0]["username"].as_str().unwrap();
    let (expiry, who) = username.split_once(':').unwrap();
    assert_eq!(who, v["id"].as_u64().unwrap().to_string());
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (before + 600..=before + 602).contains(&expiry),
        "{expiry} vs {before}"
    );
    // The password as coturn computes it (HMAC-SHA1 of the username).
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        secret.as_bytes(),
    );
    let want = base64::engine::general_purpose::STANDARD
        .encode(aws_lc_rs::hmac::sign(&key, username.as_bytes()).as_ref());
    assert_eq!(servers[0]["credential"], want.as_str());
    // Counted.
    let mut tcp = TcpStream::connect(&admin).await.unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    assert!(
        body.contains("salon_gateway_turn_credentials_total 1\n"),
        "{body}"
    );
    stop(child);
    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(log.contains("TURN credentials for members"), "{log}");
    assert!(!log.contains(secret), "the secret was logged");
    assert!(!log.contains(want.as_str()), "a credential was logged");

    // Too short a secret: no start, and the error does not show it.
    std::fs::write(dir.join("short"), "tiny-secret").unwrap();
    let out = Command::new(SALON)
        .args(["--listen", "127.0.0.1:0", "--media-port", "0"])
        .args(["--admin-listen", "off", "--policy", &repo("lua/open.lua")])
        .args(["--turn-url", "turn:127.0.0.5:3478", "--turn-secret-file"])
        .arg(dir.join("short"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 16 bytes"), "{err}");
    assert!(!err.contains("tiny-secret"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
