//! Issue #4 over real WebSockets: the gateway started in-process with a Lua
//! policy folder and a token config, a recording fake media plane, and
//! hostile clients, tokens and policies. Every refusal is checked for its
//! error code AND for the absence of any state change.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use salon_gateway::control::{Command, MediaKind};
use salon_gateway::{MediaControl, ServeOptions, media_event_channel, serve};
use salon_plugins::{AuthConfig, Authenticator, PolicyConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};

type Ws = WebSocketStream<TcpStream>;

const SECRET: &str = "gateway-policy-test-secret-0123456789";

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/tests/keys")
}

fn repo_lua() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua")
}

/// A fresh policy folder holding copies of `files` (name, source).
fn policy_dir(files: &[(&str, &str)]) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "salon-gw-policy-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(repo_lua().join(name)).unwrap()
}

fn auth() -> Arc<Authenticator> {
    let config: AuthConfig = toml::from_str(&format!(
        r#"
issuers = ["salon-test"]
audiences = ["salon"]
leeway_secs = 30

[[keys]]
id = "hs"
algorithms = ["HS256"]
secret = "{SECRET}"

[[keys]]
id = "rs"
algorithms = ["RS256"]
public_key_pem = """{}"""
"#,
        std::fs::read_to_string(keys_dir().join("rsa_public.pem")).unwrap()
    ))
    .unwrap();
    Arc::new(Authenticator::new(&config).unwrap())
}

fn claims(room: &str, sub: &str) -> Value {
    let now = now_s();
    json!({
        "iss": "salon-test", "aud": "salon", "sub": sub, "room": room,
        "nbf": now - 10, "exp": now + 3600,
        "context": {"user": {"id": sub, "name": "Agent", "moderator": true}}
    })
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn agent_token(room: &str, sub: &str) -> String {
    hs256(&claims(room, sub))
}

fn b64(v: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

struct FakeMedia {
    commands: Mutex<Vec<Command>>,
}

impl MediaControl for FakeMedia {
    fn send(&self, cmd: Command) {
        self.commands.lock().unwrap().push(cmd);
    }
    fn metrics_text(&self) -> String {
        String::new()
    }
}

struct Harness {
    addr: std::net::SocketAddr,
    media: Arc<FakeMedia>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Harness {
    /// A gateway with the policy `<dir>/<entry>.lua`, polled every 50 ms.
    async fn start(dir: &Path, entry: &str, cooldown: Duration) -> Self {
        let mut policy = PolicyConfig::new(dir);
        policy.entry = entry.to_owned();
        policy.wall_budget = None; // deterministic limits only
        let opts = ServeOptions {
            policy: Some(policy),
            policy_poll: Duration::from_millis(50),
            auth: Some(auth()),
            deny_cooldown: cooldown,
            // These tests refuse many joins on one socket on purpose; the
            // failed-join bounds have their own (tests/conn_limits.rs).
            max_failed_joins: 0,
            join_backoff: Duration::ZERO,
            ..ServeOptions::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_events, rx) = media_event_channel();
        let media = Arc::new(FakeMedia {
            commands: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, media.clone(), rx, opts, async move {
            let _ = stopped.await;
        }));
        Harness {
            addr,
            media,
            stop: Some(stop),
            task,
        }
    }

    async fn default_policy() -> Self {
        let dir = policy_dir(&[
            ("policy.lua", &shipped("policy.lua")),
            ("agents.lua", &shipped("agents.lua")),
        ]);
        Self::start(&dir, "policy", Duration::from_millis(600)).await
    }

    async fn ws(&self) -> Ws {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let (ws, _) = client_async(format!("ws://{}/ws", self.addr), tcp)
            .await
            .unwrap();
        ws
    }

    fn commands(&self) -> Vec<Command> {
        self.media.commands.lock().unwrap().clone()
    }

    async fn metrics(&self) -> String {
        let mut tcp = TcpStream::connect(self.addr).await.unwrap();
        let req = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    async fn metric(&self, line_prefix: &str) -> u64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
            .unwrap_or(0)
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

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next message, past the `lobby-position` updates a knocking guest
/// gets (their order is tested in the hub's lobby tests; these tests are
/// about who may do what).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("message in time")
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] != "lobby-position" {
                return v;
            }
        }
    }
}

/// Nothing arrives within `ms`.
async fn silent(ws: &mut Ws, ms: u64) {
    if let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(ms), ws.next()).await
    {
        panic!("unexpected message: {t}");
    }
}

async fn expect_type(ws: &mut Ws, ty: &str) -> Value {
    let v = recv(ws).await;
    assert_eq!(v["type"], ty, "{v}");
    v
}

async fn expect_error(ws: &mut Ws, code: &str) -> String {
    let v = recv(ws).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], code, "{v}");
    v["message"].as_str().unwrap().to_owned()
}

async fn join(ws: &mut Ws, room: &str, name: &str, jwt: Option<&str>) {
    let mut v = json!({"type":"join","room":room,"name":name});
    if let Some(t) = jwt {
        v["jwt"] = t.into();
    }
    send(ws, v).await;
}

/// An agent in `room`; returns (socket, id).
async fn agent(h: &Harness, room: &str, sub: &str) -> (Ws, u64) {
    let mut ws = h.ws().await;
    join(&mut ws, room, "Agent", Some(&agent_token(room, sub))).await;
    let v = expect_type(&mut ws, "joined").await;
    assert_eq!(v["role"], "moderator");
    (ws, v["id"].as_u64().unwrap())
}

/// A guest waiting in `room`'s lobby, seen by `moderator`; returns (socket, id).
async fn waiting_guest(h: &Harness, room: &str, name: &str, moderator: &mut Ws) -> (Ws, u64) {
    let mut ws = h.ws().await;
    join(&mut ws, room, name, None).await;
    let v = expect_type(&mut ws, "lobby").await;
    let id = v["id"].as_u64().unwrap();
    let k = expect_type(moderator, "knock").await;
    assert_eq!(k["id"], id);
    assert_eq!(k["name"], name);
    (ws, id)
}

fn forwarding_off(h: &Harness) -> usize {
    h.commands()
        .iter()
        .filter(|c| matches!(c, Command::SetForwarding { enabled: false, .. }))
        .count()
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_reason_and_change_nothing() {
    let h = Harness::default_policy().await;
    let mut ws = h.ws().await;
    let now = now_s();
    let mut expired = claims("R", "a");
    expired["exp"] = json!(now - 3600);
    let mut early = claims("R", "a");
    early["nbf"] = json!(now + 3600);
    let mut stranger = claims("R", "a");
    stranger["iss"] = json!("evil");
    let mut audience = claims("R", "a");
    audience["aud"] = json!("other");
    // alg: none, unsigned.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims("R", "a").to_string().as_bytes())
    );
    // Algorithm confusion: HS256 "signed" with the RS256 public key.
    let pem = std::fs::read(keys_dir().join("rsa_public.pem")).unwrap();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("R", "a"),
        &EncodingKey::from_secret(&pem),
    )
    .unwrap();
    let mut confused_kid = Header::new(Algorithm::HS256);
    confused_kid.kid = Some("rs".into());
    let confused_kid = jsonwebtoken::encode(
        &confused_kid,
        &claims("R", "a"),
        &EncodingKey::from_secret(&pem),
    )
    .unwrap();
    let cases: Vec<(String, &str)> = vec![
        (hs256(&expired), "expired"),
        (hs256(&early), "not yet valid"),
        (none, "algorithm"),
        (confused, "signature"),
        (confused_kid, "algorithm"),
        (hs256(&stranger), "issuer"),
        (hs256(&audience), "audience"),
        (agent_token("A", "a"), "room"),
        ("not-a-token".into(), "malformed"),
    ];
    for (token, why) in &cases {
        join(&mut ws, "R", "Mallory", Some(token)).await;
        let msg = expect_error(&mut ws, "auth-failed").await;
        assert!(msg.contains(why), "{why}: {msg}");
    }
    assert!(h.commands().is_empty(), "no Join reached mediad");
    assert_eq!(h.metric("salon_gateway_rooms").await, 0);
    // A valid RS256 token for room R now works on the same socket.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rs".into());
    let key =
        EncodingKey::from_rsa_pem(&std::fs::read(keys_dir().join("rsa_private.pem")).unwrap())
            .unwrap();
    let good = jsonwebtoken::encode(&header, &claims("R", "a"), &key).unwrap();
    join(&mut ws, "R", "Agent", Some(&good)).await;
    assert_eq!(expect_type(&mut ws, "joined").await["role"], "moderator");
    h.stop().await;
}

#[tokio::test]
async fn guests_cannot_admit_moderate_or_act_as_someone_else() {
    let h = Harness::default_policy().await;
    // A guest cannot create a room.
    let mut early = h.ws().await;
    join(&mut early, "R", "Early", None).await;
    let msg = expect_error(&mut early, "denied").await;
    assert!(msg.contains("does not exist"), "{msg}");
    let (mut a, a_id) = agent(&h, "R", "agent-a").await;
    let (mut b, b_id) = agent(&h, "B", "agent-b").await;
    let (mut g, g_id) = waiting_guest(&h, "R", "Gaston", &mut a).await;
    // The waiting guest tries to admit itself, to mute or kick the agent.
    for v in [
        json!({"type":"admit","id":g_id}),
        json!({"type":"mute","id":a_id}),
        json!({"type":"kick","id":a_id}),
        json!({"type":"publish-offer","sdp":"v=0"}),
    ] {
        send(&mut g, v.clone()).await;
        let v = recv(&mut g).await;
        assert_eq!(v["type"], "error");
        assert!(v["code"] == "forbidden" || v["code"] == "not-joined", "{v}");
    }
    silent(&mut a, 200).await; // the agent's list did not change
    assert_eq!(h.metric("salon_gateway_lobby_waiting").await, 1);
    // Admitted, the guest still cannot moderate; the agent keeps its audio.
    send(&mut a, json!({"type":"admit","id":g_id})).await;
    expect_type(&mut g, "admitted").await;
    let joined = expect_type(&mut g, "joined").await;
    assert_eq!(joined["role"], "guest");
    assert_eq!(joined["id"], g_id);
    expect_type(&mut a, "participant-joined").await;
    for v in [
        json!({"type":"mute","id":a_id}),
        json!({"type":"mute-all"}),
        json!({"type":"kick","id":a_id,"ban":true}),
        json!({"type":"grant-moderator","id":g_id}),
        json!({"type":"lock","on":true}),
        json!({"type":"end-meeting"}),
        json!({"type":"mute","id":a_id,"from":a_id,"role":"moderator"}),
    ] {
        send(&mut g, v).await;
        expect_error(&mut g, "forbidden").await;
    }
    silent(&mut a, 200).await;
    assert_eq!(
        forwarding_off(&h),
        0,
        "no SetForwarding for any refused mute"
    );
    assert_eq!(h.metric("salon_gateway_participants").await, 3);
    // Claiming someone else's id in a chat changes nothing: `from` is the sender.
    send(
        &mut g,
        json!({"type":"chat","text":"hi","from":a_id,"name":"Agent"}),
    )
    .await;
    let c = expect_type(&mut a, "chat").await;
    assert_eq!(
        (c["from"].as_u64(), c["name"].as_str()),
        (Some(g_id), Some("Gaston"))
    );
    expect_type(&mut g, "chat").await;
    // The agent of room R cannot reach room B's participant.
    for v in [
        json!({"type":"mute","id":b_id}),
        json!({"type":"kick","id":b_id}),
        json!({"type":"grant-moderator","id":b_id}),
        json!({"type":"admit","id":b_id}),
    ] {
        send(&mut a, v).await;
        expect_error(&mut a, "no-such-participant").await;
    }
    silent(&mut b, 200).await;
    assert_eq!(forwarding_off(&h), 0);
    // A real mute reaches mediad.
    send(&mut a, json!({"type":"mute","id":g_id})).await;
    let m = expect_type(&mut g, "muted").await;
    assert_eq!(
        (m["by"].as_u64(), m["kind"].as_str()),
        (Some(a_id), Some("audio"))
    );
    assert!(h.commands().iter().any(|c| matches!(
        c,
        Command::SetForwarding { participant, kind: MediaKind::Audio, enabled: false } if participant.0 == g_id
    )));
    h.stop().await;
}

#[tokio::test]
async fn lobby_deny_cooldown_kick_ban_lock_roles_and_end() {
    let h = Harness::default_policy().await;
    let (mut a, a_id) = agent(&h, "R", "agent-a").await;
    let (mut g, g_id) = waiting_guest(&h, "R", "Gaston", &mut a).await;
    let (mut d, d_id) = waiting_guest(&h, "R", "Denise", &mut a).await;
    // A second moderator sees both waiting guests when it joins.
    let mut a2 = h.ws().await;
    join(&mut a2, "R", "Agent2", Some(&agent_token("R", "agent-2"))).await;
    let j2 = expect_type(&mut a2, "joined").await;
    let a2_id = j2["id"].as_u64().unwrap();
    for id in [g_id, d_id] {
        assert_eq!(expect_type(&mut a2, "knock").await["id"], id);
    }
    expect_type(&mut a, "participant-joined").await;
    // Deny: told with the cooldown; the other moderator's list is synced.
    send(&mut a, json!({"type":"deny","id":d_id})).await;
    let denied = expect_type(&mut d, "denied").await;
    assert_eq!(denied["retry_after_ms"], 600);
    let r = expect_type(&mut a2, "knock-resolved").await;
    assert_eq!(
        (r["id"].as_u64(), r["by"].as_u64(), r["admitted"].as_bool()),
        (Some(d_id), Some(a_id), Some(false))
    );
    send(&mut d, json!({"type":"knock"})).await;
    expect_error(&mut d, "knock-too-soon").await;
    silent(&mut a, 100).await;
    tokio::time::sleep(Duration::from_millis(650)).await;
    send(&mut d, json!({"type":"knock"})).await;
    assert_eq!(expect_type(&mut a, "knock").await["id"], d_id);
    assert_eq!(expect_type(&mut a2, "knock").await["id"], d_id);
    // Admit Gaston; kick him: back to the lobby, may re-knock.
    send(&mut a, json!({"type":"admit","id":g_id})).await;
    expect_type(&mut g, "admitted").await;
    expect_type(&mut g, "joined").await;
    expect_type(&mut a2, "knock-resolved").await;
    expect_type(&mut a2, "participant-joined").await;
    expect_type(&mut a, "participant-joined").await;
    send(&mut a, json!({"type":"kick","id":g_id})).await;
    let k = expect_type(&mut g, "kicked").await;
    assert_eq!(
        (k["by"].as_u64(), k["ban"].as_bool()),
        (Some(a_id), Some(false))
    );
    assert_eq!(expect_type(&mut g, "lobby").await["id"], g_id);
    assert_eq!(expect_type(&mut a, "participant-left").await["id"], g_id);
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, Command::Leave { participant } if participant.0 == g_id))
    );
    send(&mut g, json!({"type":"knock"})).await;
    assert_eq!(expect_type(&mut a, "knock").await["id"], g_id);
    // Admit again, then kick with a ban: no way back on this socket.
    send(&mut a, json!({"type":"admit","id":g_id})).await;
    expect_type(&mut g, "admitted").await;
    expect_type(&mut g, "joined").await;
    send(&mut a, json!({"type":"kick","id":g_id,"ban":true})).await;
    assert_eq!(expect_type(&mut g, "kicked").await["ban"], true);
    join(&mut g, "R", "Gaston", None).await;
    expect_error(&mut g, "banned").await;
    // Grant and revoke moderator: everyone is told.
    expect_type(&mut a, "participant-joined").await;
    expect_type(&mut a, "participant-left").await;
    send(&mut a, json!({"type":"grant-moderator","id":a2_id})).await;
    let rc = expect_type(&mut a, "role-changed").await;
    assert_eq!(
        (rc["id"].as_u64(), rc["role"].as_str()),
        (Some(a2_id), Some("moderator"))
    );
    send(&mut a, json!({"type":"revoke-moderator","id":a2_id})).await;
    assert_eq!(
        expect_type(&mut a, "role-changed").await["role"],
        "participant"
    );
    // The demoted agent can no longer moderate.
    send(&mut a2, json!({"type":"mute","id":a_id})).await;
    loop {
        let v = recv(&mut a2).await;
        if v["type"] == "error" {
            assert_eq!(v["code"], "forbidden");
            break;
        }
    }
    // Lock: a new guest is refused, everyone is told.
    send(&mut a, json!({"type":"lock","on":true})).await;
    let l = expect_type(&mut a, "room-locked").await;
    assert_eq!(
        (l["on"].as_bool(), l["by"].as_u64()),
        (Some(true), Some(a_id))
    );
    // (Every socket here comes from 127.0.0.1, the address of the banned
    // guest: an anonymous newcomer would be refused as banned. A token
    // holder is judged by its identity.)
    let mut late = h.ws().await;
    join(&mut late, "R", "Late", None).await;
    expect_error(&mut late, "banned").await;
    let mut c = claims("R", "late");
    c["context"]["user"]["moderator"] = false.into();
    let mut late = h.ws().await;
    join(&mut late, "R", "Late", Some(&hs256(&c))).await;
    expect_error(&mut late, "room-locked").await;
    // End the meeting: members and the waiting guest are told; mediad Leave.
    send(&mut a, json!({"type":"end-meeting"})).await;
    for ws in [&mut a, &mut d] {
        let e = expect_type(ws, "meeting-ended").await;
        assert_eq!(e["reason"], "ended-by-moderator");
    }
    loop {
        if recv(&mut a2).await["type"] == "meeting-ended" {
            break;
        }
    }
    assert_eq!(h.metric("salon_gateway_rooms").await, 0);
    assert_eq!(h.metric("salon_gateway_lobby_waiting").await, 0);
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, Command::Leave { participant } if participant.0 == a_id))
    );
    h.stop().await;
}

#[tokio::test]
async fn hostile_policies_fail_closed_and_the_gateway_keeps_serving() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/tests/policies");
    for (name, kind) in [("loop", "timeout"), ("alloc", "out_of_memory")] {
        let src = std::fs::read_to_string(plugins.join(name).join("policy.lua")).unwrap();
        let dir = policy_dir(&[("policy.lua", &src)]);
        let h = Harness::start(&dir, "policy", Duration::from_secs(30)).await;
        let mut ws = h.ws().await;
        for _ in 0..2 {
            join(&mut ws, "R", "Ana", None).await;
            let msg = expect_error(&mut ws, "denied").await;
            assert_eq!(msg, "refused by the room policy");
        }
        let counted = h
            .metric(&format!(
                "salon_policy_failures_total{{hook=\"on_join\",kind=\"{kind}\"}}"
            ))
            .await;
        assert_eq!(counted, 2, "{name}");
        assert!(h.commands().is_empty());
        // Still serving.
        let mut other = h.ws().await;
        send(&mut other, json!({"type":"dance"})).await;
        expect_error(&mut other, "unknown-type").await;
        h.stop().await;
    }
}

#[tokio::test]
async fn a_broken_reload_keeps_the_previous_policy() {
    let dir = policy_dir(&[("open.lua", &shipped("open.lua"))]);
    let h = Harness::start(&dir, "open", Duration::from_secs(30)).await;
    let mut a = h.ws().await;
    join(&mut a, "R", "Ana", None).await;
    assert_eq!(expect_type(&mut a, "joined").await["role"], "moderator");
    // A syntax error: the reload fails, is counted, and the old policy runs.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(
        dir.join("open.lua"),
        "local open = {\nfunction open.on_join(",
    )
    .unwrap();
    let load = "salon_policy_failures_total{hook=\"load\",kind=\"load\"}";
    let mut n = 0;
    for _ in 0..100 {
        n = h.metric(load).await;
        if n > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n, 1, "the failed reload is counted once");
    let mut b = h.ws().await;
    join(&mut b, "R", "Bob", None).await;
    assert_eq!(expect_type(&mut b, "joined").await["role"], "participant");
    // A good edit is picked up.
    std::fs::write(
        dir.join("open.lua"),
        "return { on_join = function(ctx) return { action = \"deny\", reason = \"closed today\" } end }",
    )
    .unwrap();
    let mut reloaded = false;
    for _ in 0..100 {
        if h.metric("salon_policy_reloads_total").await >= 1 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded);
    let mut c = h.ws().await;
    join(&mut c, "R", "Cy", None).await;
    assert_eq!(expect_error(&mut c, "denied").await, "closed today");
    assert_eq!(h.metric(load).await, 1);
    h.stop().await;
}
