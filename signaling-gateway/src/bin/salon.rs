//! `salon`: one process running the signaling gateway and an embedded mediad.
//!
//! Prints `Salon: http://<addr>/` to stdout once it is listening (tests read
//! it to find the port) and, without `--auth-config`, a second line with a
//! dev agent link; logs go to stderr. Ctrl-C or SIGTERM shuts down cleanly;
//! SIGHUP reloads the Lua policy.
//!
//! `salon token …` mints a Jitsi-style HS256 token for an operator's key.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use salon_gateway::{Brand, MediaControl, ServeOptions, media_event_channel, serve};
use salon_mediad::{BackendChoice, Mediad, MediadConfig};
use salon_plugins::auth::KeyConfig;
use salon_plugins::{AuthConfig, Authenticator, PolicyConfig};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Salon: sovereign web conferencing (gateway + media plane).
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// HTTP/WebSocket listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// IP address the media plane binds and announces in ICE candidates.
    #[arg(long, default_value = "127.0.0.1")]
    media_ip: IpAddr,
    /// UDP port of the first media worker (0 = any free port).
    #[arg(long, default_value_t = 10000)]
    media_port: u16,
    /// Media worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// UDP IO backend: auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    io_backend: BackendChoice,
    /// Operator name shown in the client's header and title.
    #[arg(long, default_value = "Salon")]
    brand_name: String,
    /// Primary colour of the client, `#rrggbb`.
    #[arg(long)]
    brand_color: Option<String>,
    /// Logo file (svg, png, webp or jpeg), served by the gateway itself.
    #[arg(long)]
    brand_logo: Option<std::path::PathBuf>,
    /// Lua policy entry file; its folder is the `require` root. Reloaded on
    /// SIGHUP and when its files change (polled every 2 s).
    #[arg(long, default_value = "lua/policy.lua")]
    policy: PathBuf,
    /// Token verification config (TOML: issuers, audiences, leeway_secs,
    /// [[keys]] with id, algorithms and secret / secret_file /
    /// public_key_pem / public_key_file). Without it, a random HS256 dev key
    /// is generated and an agent link printed.
    #[arg(long)]
    auth_config: Option<PathBuf>,
    /// Seconds a denied guest waits before knocking again.
    #[arg(long, default_value_t = 30)]
    lobby_deny_cooldown_secs: u64,
    /// Most video senders each participant receives (last-N), screen
    /// shares and speakers first, for rooms whose policy (`room_settings`)
    /// sets none. 0 means no limit.
    #[arg(long, default_value_t = 20)]
    last_n: u32,
    /// Seconds a participant whose signaling socket dropped (Wi-Fi blink,
    /// page reload) keeps its place and may resume with its token. 0 turns
    /// reconnect off: a dropped socket leaves at once.
    #[arg(long, default_value_t = 30)]
    reconnect_grace_secs: u64,
    /// MiB of retransmission caches and sent logs each media worker may
    /// hold; a publish that would not fit is refused.
    #[arg(long, default_value_t = salon_mediad::WorkerLimits::DEFAULT_MEMORY_BUDGET >> 20)]
    media_memory_budget_mib: u64,
    /// Tests of supervision only: SIGUSR2 makes media worker 0 panic (the
    /// process then exits with status 70). Never in production.
    #[arg(long)]
    enable_fault_injection: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print a Jitsi-style HS256 token (for agents' links: `/<Room>?jwt=<token>`).
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// File holding the HS256 secret (its bytes, trailing newline trimmed).
    #[arg(
        long,
        conflicts_with = "auth_config",
        required_unless_present = "auth_config"
    )]
    secret_file: Option<PathBuf>,
    /// Or: take the first HS256 key, issuer and audience of this auth config.
    #[arg(long)]
    auth_config: Option<PathBuf>,
    /// Room the token is valid for (`*`: any).
    #[arg(long)]
    room: String,
    /// Display name (`context.user.name`).
    #[arg(long)]
    name: String,
    /// Grant the moderator flag.
    #[arg(long)]
    moderator: bool,
    /// Validity, in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// `iss` (default: the config's first issuer, else `salon-dev`).
    #[arg(long)]
    issuer: Option<String>,
    /// `aud` (default: the config's first audience, else `salon`).
    #[arg(long)]
    audience: Option<String>,
    /// `sub` and `context.user.id` (default: random).
    #[arg(long)]
    sub: Option<String>,
}

/// `--auth-config` file: `salon_plugins::AuthConfig`, with key material
/// also from files (paths relative to the config file).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    issuers: Vec<String>,
    audiences: Vec<String>,
    #[serde(default = "default_leeway", alias = "clock_skew_secs")]
    leeway_secs: u64,
    keys: Vec<KeyFile>,
}

fn default_leeway() -> u64 {
    salon_plugins::auth::DEFAULT_LEEWAY_SECS
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    id: String,
    algorithms: Vec<jsonwebtoken::Algorithm>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    #[serde(default)]
    public_key_pem: Option<String>,
    #[serde(default)]
    public_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("id", &self.id)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

fn read_trimmed(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Reads an `--auth-config` file into the authenticator's config.
fn load_auth_config(path: &Path) -> anyhow::Result<AuthConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: AuthFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut keys = Vec::with_capacity(file.keys.len());
    for k in file.keys {
        let secret = match (k.secret, k.secret_file) {
            (Some(s), None) => Some(s),
            (None, Some(f)) => Some(read_trimmed(&base.join(f))?),
            (None, None) => None,
            (Some(_), Some(_)) => anyhow::bail!("key {:?}: secret and secret_file both set", k.id),
        };
        let public_key_pem = match (k.public_key_pem, k.public_key_file) {
            (Some(p), None) => Some(p),
            (None, Some(f)) => Some(
                std::fs::read_to_string(base.join(&f))
                    .with_context(|| format!("reading {}", f.display()))?,
            ),
            (None, None) => None,
            (Some(_), Some(_)) => {
                anyhow::bail!(
                    "key {:?}: public_key_pem and public_key_file both set",
                    k.id
                )
            }
        };
        keys.push(KeyConfig {
            id: k.id,
            algorithms: k.algorithms,
            secret,
            public_key_pem,
        });
    }
    Ok(AuthConfig {
        keys,
        issuers: file.issuers,
        audiences: file.audiences,
        leeway_secs: file.leeway_secs,
    })
}

/// The policy folder and entry module of `--policy lua/open.lua`.
fn policy_config(path: &Path) -> anyhow::Result<PolicyConfig> {
    let entry = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| path.extension().is_some_and(|e| e == "lua") && !s.is_empty())
        .context("--policy must name a .lua file")?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut config = PolicyConfig::new(dir);
    config.entry = entry.to_owned();
    Ok(config)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore as _;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Jitsi-style HS256 token.
#[allow(clippy::too_many_arguments)]
fn mint(
    secret: &str,
    issuer: &str,
    audience: &str,
    sub: &str,
    room: &str,
    name: &str,
    moderator: bool,
    ttl: u64,
) -> anyhow::Result<String> {
    let now = unix_now();
    let claims = serde_json::json!({
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "room": room,
        "nbf": now.saturating_sub(10),
        "exp": now + ttl,
        "context": { "user": { "id": sub, "name": name, "moderator": moderator } },
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("signing the token")
}

fn token_command(t: &TokenArgs) -> anyhow::Result<()> {
    let (secret, issuer, audience) = match (&t.secret_file, &t.auth_config) {
        (Some(f), _) => (read_trimmed(f)?, None, None),
        (None, Some(c)) => {
            let config = load_auth_config(c)?;
            let key = config
                .keys
                .iter()
                .find(|k| {
                    k.secret.is_some() && k.algorithms.contains(&jsonwebtoken::Algorithm::HS256)
                })
                .context("the auth config has no HS256 key")?;
            (
                key.secret.clone().unwrap_or_default(),
                config.issuers.first().cloned(),
                config.audiences.first().cloned(),
            )
        }
        (None, None) => anyhow::bail!("give --secret-file or --auth-config"),
    };
    anyhow::ensure!(
        t.room == "*" || salon_gateway::protocol::validate_room(&t.room).is_ok(),
        "--room must be * or 1 to 64 letters, digits or dashes"
    );
    let sub = t
        .sub
        .clone()
        .unwrap_or_else(|| format!("user-{}", random_hex(8)));
    let token = mint(
        &secret,
        t.issuer
            .as_deref()
            .or(issuer.as_deref())
            .unwrap_or("salon-dev"),
        t.audience
            .as_deref()
            .or(audience.as_deref())
            .unwrap_or("salon"),
        &sub,
        &t.room,
        &t.name,
        t.moderator,
        t.ttl,
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}").context("writing to stdout")?;
    Ok(())
}

fn brand(args: &Args) -> anyhow::Result<Brand> {
    let name = args.brand_name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control),
        "--brand-name must be 1 to 64 characters"
    );
    let color = match &args.brand_color {
        Some(c) => Some(Brand::parse_color(c).context("--brand-color must be #rrggbb")?),
        None => None,
    };
    let logo = match &args.brand_logo {
        Some(path) => {
            let ct = Brand::logo_content_type(path)
                .context("--brand-logo must be an .svg, .png, .webp or .jpeg file")?;
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading --brand-logo {}", path.display()))?;
            anyhow::ensure!(bytes.len() <= 512 * 1024, "--brand-logo is over 512 KiB");
            Some((ct, bytes.into()))
        }
        None => None,
    };
    Ok(Brand {
        name: name.to_owned(),
        color,
        logo,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Cmd::Token(t)) = &args.command {
        return token_command(t);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("salon-gw")
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let brand = brand(&args)?;
    let policy = policy_config(&args.policy)?;
    // Load once now, so a broken policy stops the start with Lua's message
    // (serve loads its own copy).
    salon_plugins::PolicyHost::new(policy.clone())
        .map_err(|e| anyhow::anyhow!("loading the policy {}: {e}", args.policy.display()))?;
    // Dev default: a random HS256 key, and an agent link to print.
    let (auth_config, dev) = match &args.auth_config {
        Some(path) => (load_auth_config(path)?, None),
        None => {
            let secret = random_hex(32);
            let config = AuthConfig {
                keys: vec![KeyConfig {
                    id: "dev".to_owned(),
                    algorithms: vec![jsonwebtoken::Algorithm::HS256],
                    secret: Some(secret.clone()),
                    public_key_pem: None,
                }],
                issuers: vec!["salon-dev".to_owned()],
                audiences: vec!["salon".to_owned()],
                leeway_secs: default_leeway(),
            };
            (config, Some(secret))
        }
    };
    let auth = Authenticator::new(&auth_config).context("--auth-config")?;
    let (events_tx, events_rx) = media_event_channel();
    let config = MediadConfig {
        bind_ip: args.media_ip,
        announce_ip: args.media_ip,
        first_port: args.media_port,
        workers: args.workers,
        io_backend: args.io_backend,
        limits: salon_mediad::WorkerLimits {
            memory_budget_bytes: args.media_memory_budget_mib << 20,
            ..Default::default()
        },
        exit_on_worker_failure: true,
        fault_injection: args.enable_fault_injection,
    };
    let (mediad, media_events) = Mediad::start(config).context("starting mediad")?;
    let mediad = Arc::new(mediad);
    if args.enable_fault_injection {
        panic_worker_on_sigusr2(mediad.clone())?;
    }
    // mediad's event queue into the hub's channel (both unbounded: mediad's
    // workers never block). The thread ends when mediad's workers are gone.
    std::thread::Builder::new()
        .name("mediad-events".to_owned())
        .spawn(move || {
            while let Some(event) = media_events.recv() {
                if events_tx.send(event).is_err() {
                    break;
                }
            }
        })
        .context("starting the media event thread")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // Install the signal handlers before announcing the address, so a
    // SIGTERM sent right after the line is read still shuts down cleanly.
    let shutdown = shutdown_signal()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "Salon: http://{addr}/").context("writing to stdout")?;
        if let Some(secret) = &dev {
            let room = format!("Reunion-{}", &random_hex(4));
            let token = mint(
                secret,
                "salon-dev",
                "salon",
                "dev-agent",
                &room,
                "Agent",
                true,
                24 * 3600,
            )?;
            writeln!(
                out,
                "Agent (moderator) link: http://{addr}/{room}?jwt={token}"
            )
            .context("writing to stdout")?;
        }
        out.flush().context("flushing stdout")?;
    }
    let media: Arc<dyn MediaControl> = mediad.clone();
    serve(
        listener,
        media,
        events_rx,
        ServeOptions {
            brand,
            policy: Some(policy),
            reload_on_sighup: true,
            auth: Some(Arc::new(auth)),
            deny_cooldown: Duration::from_secs(args.lobby_deny_cooldown_secs),
            default_last_n: (args.last_n > 0).then_some(args.last_n),
            reconnect_grace: Duration::from_secs(args.reconnect_grace_secs),
            ..ServeOptions::default()
        },
        shutdown,
    )
    .await?;
    match Arc::try_unwrap(mediad) {
        Ok(mediad) => mediad.shutdown(),
        Err(_) => tracing::warn!("mediad still referenced at exit; not joined"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// `--enable-fault-injection`: each SIGUSR2 makes media worker 0 panic
/// (`docs/control.md`, "Fault injection").
fn panic_worker_on_sigusr2(mediad: Arc<Mediad>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut usr2 = signal(SignalKind::user_defined2()).context("listening for SIGUSR2")?;
    tracing::warn!("fault injection enabled: SIGUSR2 makes media worker 0 panic");
    tokio::spawn(async move {
        while usr2.recv().await.is_some() {
            if let Err(e) = mediad.inject_panic(0) {
                tracing::error!(error = %e, "fault injection refused");
            }
        }
    });
    Ok(())
}

/// Registers for Ctrl-C (SIGINT) and SIGTERM now; the returned future
/// resolves when either arrives.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
