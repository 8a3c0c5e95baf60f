//! `salon`: one process running the signaling gateway and an embedded mediad.
//!
//! Prints `Salon: http://<addr>/` to stdout once it is listening (tests read
//! it to find the port) and, without `--auth-config`, a second line with a
//! dev agent link, then `Salon admin: http://<addr>/` for the admin
//! listener (`/metrics`) unless `--admin-listen off`; logs go to stderr.
//! With `--tls-cert`/`--tls-key` the first line reads `Salon: https://…`,
//! and with `--redirect-http` a last line `Salon redirect: http://<addr>/`
//! follows. Ctrl-C or SIGTERM shuts down cleanly; SIGHUP reloads the Lua
//! policy and the TLS certificate.
//!
//! Exit status: 0 after a clean shutdown, 1 for a start-up error, 70 if the
//! hub task panicked (signaling stopped: the supervisor restarts the
//! process and clients reconnect).
//!
//! `salon token …` mints a Jitsi-style HS256 token for an operator's key.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use salon_gateway::{
    AdminListener, Brand, HubPanicked, MediaControl, RedirectListener, ServeOptions, ServerCert,
    TlsOptions, TurnConfig, TurnSecret, config_file, media_event_channel, serve,
};
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
    /// Configuration file (TOML, one key per flag: `deploy/salon.toml`);
    /// `SALON_<FLAG>` environment variables override it, flags override
    /// both. Also `SALON_CONFIG`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTP/WebSocket listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// IP address the media plane binds (and announces in ICE candidates
    /// unless --announce-ip). `::` binds both IPv4 and IPv6 (dual stack);
    /// `::` or `0.0.0.0` without --announce-ip announces the host's
    /// interface addresses.
    #[arg(long, default_value = "127.0.0.1")]
    media_ip: IpAddr,
    /// The address announced in mediad's ICE candidates when it differs
    /// from --media-ip: a 1:1 NAT such as a cloud VM's public address
    /// (bind the private one with --media-ip). Repeatable: one IPv4 and
    /// one IPv6 address with --media-ip ::.
    #[arg(long)]
    announce_ip: Vec<IpAddr>,
    /// A host name whose addresses are announced instead of
    /// --announce-ip (a public name that follows the VM's address): looked
    /// up once at start, the first address of each family the media socket
    /// takes. Restart after the name's addresses change.
    #[arg(long, conflicts_with = "announce_ip")]
    announce_host: Option<String>,
    /// UDP port of the first media worker (0 = any free port).
    #[arg(long, default_value_t = 10000)]
    media_port: u16,
    /// ICE-TCP port of the first media worker (RFC 6544 passive
    /// candidates): a port number, `same` (the UDP port's number, the
    /// default) or `off` / `0` (no TCP listener, no TCP candidate).
    #[arg(long, default_value = "same")]
    media_tcp_port: salon_mediad::MediaTcp,
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
    /// Font file (woff2, at most 1 MiB) the client puts first in its font
    /// stack, served by the gateway itself at `/brand/font`. Without it the
    /// client uses the system's fonts. Marianne is for State services only:
    /// give its woff2 here only if you are one.
    #[arg(long)]
    brand_font: Option<std::path::PathBuf>,
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
    /// OIDC login for agents ("Se connecter"; docs/oidc.md): the provider's
    /// issuer URL (ProConnect, or any OpenID provider). Its discovery
    /// document is read at start-up and retried in the background.
    #[arg(long, requires_all = ["oidc_client_id", "oidc_redirect_url"])]
    oidc_issuer: Option<String>,
    /// Salon's client id at the OIDC provider.
    #[arg(long, requires = "oidc_issuer")]
    oidc_client_id: Option<String>,
    /// File holding Salon's client secret at the OIDC provider (none: a
    /// public client, PKCE only).
    #[arg(long, requires = "oidc_issuer")]
    oidc_client_secret_file: Option<PathBuf>,
    /// The callback URL registered at the provider:
    /// `https://<public name>/auth/callback`.
    #[arg(long, requires = "oidc_issuer")]
    oidc_redirect_url: Option<String>,
    /// Scopes asked of the OIDC provider, space-separated (ProConnect's by
    /// default).
    #[arg(long, default_value = salon_gateway::oidc::DEFAULT_SCOPES)]
    oidc_scopes: String,
    /// `acr_values` asked of the OIDC provider (ProConnect: e.g. `eidas1`).
    #[arg(long)]
    oidc_acr_values: Option<String>,
    /// Where the provider sends the browser after logout (registered there),
    /// e.g. `https://<public name>/`.
    #[arg(long)]
    oidc_post_logout_redirect_url: Option<String>,
    /// Seconds an OIDC login session lasts.
    #[arg(long, default_value_t = 8 * 3600)]
    oidc_session_ttl_secs: u64,
    /// Most OIDC login sessions held in memory (the closest to expiry go
    /// first).
    #[arg(long, default_value_t = 100_000)]
    oidc_max_sessions: usize,
    /// CA certificates (PEM) trusted for the OIDC provider's https.
    #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt")]
    oidc_ca_file: PathBuf,
    /// Seconds a denied guest waits before knocking again.
    #[arg(long, default_value_t = 30)]
    lobby_deny_cooldown_secs: u64,
    /// Most video senders each participant receives (last-N), screen
    /// shares and speakers first, for rooms whose policy (`room_settings`)
    /// sets none. 0 means no limit.
    #[arg(long, default_value_t = 20)]
    last_n: u32,
    /// Seconds a participant whose signaling socket dropped (Wi-Fi blink,
    /// page reload) keeps its place and may resume with its token; a guest
    /// waiting in a lobby keeps its place in the queue as long. 0 turns
    /// reconnect off: a dropped socket leaves at once.
    #[arg(long, default_value_t = 30)]
    reconnect_grace_secs: u64,
    /// Admin listener for `/metrics` and `/healthz` (keep it on loopback or
    /// a private network); `off` for none. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9091")]
    admin_listen: AdminAddr,
    /// Also serve `/metrics` on the public listener (not recommended: it
    /// tells anyone how many meetings and people there are).
    #[arg(long)]
    metrics_on_public: bool,
    /// A `Host` name the public listener answers to (repeatable; e.g.
    /// `salon.example.org`). Default: `localhost` and loopback addresses if
    /// `--listen` is on loopback (against DNS rebinding), any host
    /// otherwise. Requests for another host get 421.
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// The address of a reverse proxy whose `X-Forwarded-For` is believed
    /// (repeatable; e.g. `127.0.0.1` for nginx on the same machine): the
    /// per-address bounds (connection cap, bans and knock limits of
    /// anonymous guests) then apply to the client address it forwards.
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Most WebSockets open at once (more get HTTP 503). 0: no limit.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Most WebSockets open at once from one address (IPv4, or IPv6 /64;
    /// more get HTTP 429). 50 lets a town hall behind one NAT in. Behind a
    /// reverse proxy every client has the proxy's address: set 0 (no
    /// limit) and limit at the proxy.
    #[arg(long, default_value_t = 50)]
    max_connections_per_ip: usize,
    /// Most plain HTTP connections open at once from one address (more are
    /// closed at accept; idle ones close after 10 s). Behind a reverse
    /// proxy: 0 (no limit). WebSockets are counted by
    /// --max-connections-per-ip instead.
    #[arg(long, default_value_t = 256)]
    max_http_per_ip: usize,
    /// Seconds a new signaling socket has to join (or resume) before it is
    /// closed. 0: no deadline.
    #[arg(long, default_value_t = 10)]
    join_deadline_secs: u64,
    /// Seconds between the server's pings.
    #[arg(long, default_value_t = 15)]
    ping_interval_secs: u64,
    /// Seconds without any frame (pong included) after which a socket is
    /// closed as dead; a participant's then gets the reconnect grace. 0:
    /// never.
    #[arg(long, default_value_t = 30)]
    liveness_timeout_secs: u64,
    /// Seconds one turn of the signaling hub (a message, a pad frame, a
    /// timer) may last; longer, and the process exits with status 70 for
    /// its supervisor to restart it (signaling would be stuck for every
    /// meeting). 0: never.
    #[arg(long, default_value_t = 10)]
    hub_stall_secs: u64,
    /// Datagrams (in + out) per second one media worker carries at full
    /// load: the denominator of `mediad_worker_stress` and `mediad_stress`
    /// (JVB's packet-rate load threshold).
    #[arg(long, default_value_t = salon_mediad::load::DEFAULT_CAPACITY_PPS)]
    worker_capacity_pps: u64,
    /// Messages a signaling socket may send per second, sustained (pad
    /// sockets: five times as many). 0: no limit.
    #[arg(long, default_value_t = 20)]
    msg_rate: u32,
    /// Messages a signaling socket may send at once above the rate.
    #[arg(long, default_value_t = 50)]
    msg_burst: u32,
    /// Failed joins after which a socket is closed (each one doubles the
    /// wait before the next is heard, from 0.25 s). 0: never closed.
    #[arg(long, default_value_t = 5)]
    max_failed_joins: u32,
    /// Bytes queued to a socket that does not read before it is dropped.
    #[arg(long, default_value_t = 1024 * 1024)]
    ws_outbound_bytes: usize,
    /// MiB of retransmission caches and sent logs each media worker may
    /// hold; a publish that would not fit is refused.
    #[arg(long, default_value_t = salon_mediad::WorkerLimits::DEFAULT_MEMORY_BUDGET >> 20)]
    media_memory_budget_mib: u64,
    /// Pace media to each receiver at 2.5 times its bandwidth estimate
    /// (experimental, off by default: docs/layers.md, "The pacer").
    #[arg(long)]
    media_pacing: bool,
    /// Serve HTTPS on --listen with this certificate chain (PEM, leaf
    /// first; with --tls-key). Both files are read again on SIGHUP (a
    /// certificate that does not load keeps the previous one).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// `Strict-Transport-Security` max-age on HTTPS responses, in seconds
    /// (0: no header).
    #[arg(long, default_value_t = 31_536_000)]
    hsts_max_age: u64,
    /// A plain-HTTP listener (e.g. `0.0.0.0:80`) that answers every
    /// request with a 308 to the same path over HTTPS. Needs --tls-cert,
    /// and --allowed-host unless --listen is on loopback.
    #[arg(long, requires = "tls_cert")]
    redirect_http: Option<SocketAddr>,
    /// A TURN server URL handed to members with fresh credentials
    /// (repeatable; e.g. `turn:turn.example.org:3478?transport=udp`,
    /// `turns:turn.example.org:443?transport=tcp`). Needs
    /// --turn-secret-file.
    #[arg(long = "turn-url", requires = "turn_secret_file")]
    turn_urls: Vec<String>,
    /// File holding the secret shared with coturn (`static-auth-secret`;
    /// its bytes, trailing newline trimmed, at least 16). Never logged.
    #[arg(long, requires = "turn_urls")]
    turn_secret_file: Option<PathBuf>,
    /// Lifetime of a TURN credential, in seconds (60 to 604800); fresh
    /// ones are sent half-way through, for the next TURN allocations
    /// (docs/deploy.md).
    #[arg(long, default_value_t = salon_gateway::turn::DEFAULT_TTL.as_secs())]
    turn_ttl_secs: u64,
    /// An address coturn relays from other than its --turn-url hosts
    /// (coturn's `relay-ip`/`external-ip`; repeatable): mediad counts ICE
    /// from it as relayed (`mediad_ice_succeeded_relayed_total`).
    #[arg(long = "turn-relay-ip")]
    turn_relay_ips: Vec<IpAddr>,
    /// Tests of supervision only: SIGUSR2 makes media worker 0 panic (the
    /// process then exits with status 70). Never in production.
    #[arg(long)]
    enable_fault_injection: bool,
}

/// `--admin-listen`: an address, or `off`.
#[derive(Debug, Clone, Copy)]
struct AdminAddr(Option<SocketAddr>);

impl std::str::FromStr for AdminAddr {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "off" {
            return Ok(Self(None));
        }
        s.parse().map(|a| Self(Some(a)))
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// `salon config check [--config F] [flags…]`: validate the
    /// configuration (file, environment, flags) and print the effective
    /// one, with where each value came from; secrets are redacted.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Print a Jitsi-style HS256 token (for agents' links: `/<Room>#jwt=<token>`,
    /// or `?jwt=` as Jitsi, which reaches proxies' logs).
    Token(TokenArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Validate and print the effective configuration.
    Check,
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
    #[serde(default)]
    issuers: Option<Vec<String>>,
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
            issuers: k.issuers,
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

/// The policy of `--policy`, loaded once so that a broken one stops the
/// start (or `config check`) with Lua's message; `serve` loads its own copy.
fn load_policy(path: &Path) -> anyhow::Result<PolicyConfig> {
    let policy = policy_config(path)?;
    salon_plugins::PolicyHost::new(policy.clone())
        .map_err(|e| anyhow::anyhow!("loading the policy {}: {e}", path.display()))?;
    Ok(policy)
}

/// HTTPS from `--tls-cert` / `--tls-key`, if both are given.
fn load_tls(args: &Args) -> anyhow::Result<Option<TlsOptions>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let cert = ServerCert::load(cert, key).context("--tls-cert / --tls-key")?;
    let mut tls = TlsOptions::new(cert);
    tls.hsts_max_age = (args.hsts_max_age > 0).then(|| Duration::from_secs(args.hsts_max_age));
    Ok(Some(tls))
}

/// `salon config check`: what `run` loads before serving (brand, policy,
/// token keys, certificate), loaded and dropped.
fn check_files(args: &Args) -> anyhow::Result<()> {
    brand(args)?;
    load_policy(&args.policy)?;
    if let Some(path) = &args.auth_config {
        Authenticator::new(&load_auth_config(path)?).context("--auth-config")?;
    }
    load_tls(args)?;
    oidc(args)?;
    let announced = announce_ips(args)?;
    let list: Vec<String> = announced.iter().map(ToString::to_string).collect();
    // On stderr: stdout is the effective configuration, a valid file.
    let _ = writeln!(
        std::io::stderr(),
        "config check: ICE candidates announce {}",
        list.join(", ")
    );
    Ok(())
}

/// The addresses announced in mediad's candidates: `--announce-ip`, or
/// `--announce-host` looked up now, checked against `--media-ip`.
fn announce_ips(args: &Args) -> anyhow::Result<Vec<IpAddr>> {
    salon_mediad::announced(args.media_ip, &configured_announce(args)?).context("--announce-ip")
}

/// `--announce-ip` as given, or the addresses of `--announce-host`.
fn configured_announce(args: &Args) -> anyhow::Result<Vec<IpAddr>> {
    match &args.announce_host {
        Some(host) => host_addresses(host, args.media_ip).context("--announce-host"),
        None => Ok(args.announce_ip.clone()),
    }
}

/// The first address of each family that a media socket bound to `bind`
/// takes, of those `host` resolves to.
fn host_addresses(host: &str, bind: IpAddr) -> anyhow::Result<Vec<IpAddr>> {
    use std::net::ToSocketAddrs as _;
    let bind = bind.to_canonical(); // a v4-mapped bind takes IPv4
    let dual = matches!(bind, IpAddr::V6(v6) if v6.is_unspecified());
    let mut out: Vec<IpAddr> = Vec::new();
    let found = (host, 0)
        .to_socket_addrs()
        .with_context(|| format!("{host:?} does not resolve"))?;
    for a in found {
        let ip = a.ip().to_canonical();
        let takes = dual || ip.is_ipv6() == bind.is_ipv6();
        if takes && !ip.is_unspecified() && !out.iter().any(|o| o.is_ipv6() == ip.is_ipv6()) {
            out.push(ip);
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "{host:?} has no address of the family the media socket ({bind}) takes"
    );
    Ok(out)
}

/// The OIDC driver of the `--oidc-*` flags (`None` without `--oidc-issuer`).
fn oidc(args: &Args) -> anyhow::Result<Option<Arc<salon_gateway::oidc::Oidc>>> {
    use salon_gateway::oidc::{Oidc, OidcConfig};
    let (Some(issuer), Some(client_id), Some(redirect_url)) = (
        &args.oidc_issuer,
        &args.oidc_client_id,
        &args.oidc_redirect_url,
    ) else {
        return Ok(None);
    };
    let client_secret = match &args.oidc_client_secret_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --oidc-client-secret-file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let mut roots = rustls::RootCertStore::empty();
    if issuer.starts_with("https:") {
        use rustls::pki_types::pem::PemObject as _;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&args.oidc_ca_file)
            .with_context(|| format!("reading --oidc-ca-file {}", args.oidc_ca_file.display()))?;
        for cert in certs {
            let cert = cert.with_context(|| {
                format!("reading --oidc-ca-file {}", args.oidc_ca_file.display())
            })?;
            // A CA bundle may hold certificates rustls cannot use: skipped.
            let _ = roots.add(cert);
        }
        anyhow::ensure!(
            !roots.is_empty(),
            "--oidc-ca-file {}: no usable CA certificate",
            args.oidc_ca_file.display()
        );
    }
    let config = OidcConfig {
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        client_secret,
        redirect_url: redirect_url.clone(),
        scopes: args
            .oidc_scopes
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        acr_values: args.oidc_acr_values.clone(),
        post_logout_redirect_url: args.oidc_post_logout_redirect_url.clone(),
        session_ttl: Duration::from_secs(args.oidc_session_ttl_secs.max(60)),
        max_sessions: args.oidc_max_sessions,
    };
    Ok(Some(Arc::new(
        Oidc::new(config, roots).context("--oidc-*")?,
    )))
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
            // The key's own issuer: a token it signs must name it.
            let issuer = key
                .issuers
                .as_ref()
                .and_then(|list| list.first())
                .or(config.issuers.first())
                .cloned();
            (
                key.secret.clone().unwrap_or_default(),
                issuer,
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

/// The addresses TURN relays from: the `--turn-url` hosts resolved now
/// (one that does not resolve is logged and skipped) and `--turn-relay-ip`.
fn turn_relay_ips(turn: Option<&TurnConfig>, extra: &[IpAddr]) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs as _;
    let mut out: Vec<IpAddr> = extra.iter().map(|ip| ip.to_canonical()).collect();
    for (host, port) in turn.map(TurnConfig::hosts).unwrap_or_default() {
        match (host.as_str(), port).to_socket_addrs() {
            Ok(addrs) => out.extend(addrs.map(|a| a.ip().to_canonical())),
            Err(e) => tracing::warn!(
                %host, error = %e,
                "TURN host does not resolve: ICE through it is not counted as relayed"
            ),
        }
    }
    out.sort();
    out.dedup();
    if !out.is_empty() {
        tracing::info!(relays = ?out, "TURN relay addresses (counted as relayed ICE)");
    }
    out
}

/// `--turn-url`, `--turn-secret-file`, `--turn-ttl-secs` (`None`: no
/// TURN). The secret is read here and never printed.
fn turn_config(args: &Args) -> anyhow::Result<Option<TurnConfig>> {
    let Some(path) = &args.turn_secret_file else {
        return Ok(None);
    };
    let secret = read_trimmed(path).context("--turn-secret-file")?;
    let secret = TurnSecret::new(secret.into_bytes()).context("--turn-secret-file")?;
    let config = TurnConfig::new(
        args.turn_urls.clone(),
        secret,
        Duration::from_secs(args.turn_ttl_secs),
    )
    .context("--turn-url / --turn-ttl-secs")?;
    Ok(Some(config))
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
    let font = match &args.brand_font {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading --brand-font {}", path.display()))?;
            Brand::check_font(&bytes)
                .with_context(|| format!("--brand-font {}", path.display()))?;
            Some(bytes.into())
        }
        None => None,
    };
    Ok(Brand {
        name: name.to_owned(),
        color,
        logo,
        font,
    })
}

fn main() -> anyhow::Result<()> {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `salon config check …`: the rest are the server's own flags.
    let check = argv.len() >= 3 && argv[1] == "config" && argv[2] == "check";
    if check {
        argv.drain(1..3);
    }
    let file = match config_file::config_path(&argv) {
        Some(path) => match config_file::FileValues::load(&path, &Args::command()) {
            Ok(file) => file,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "salon: {e}");
                std::process::exit(2);
            }
        },
        None => config_file::FileValues::none(),
    };
    let cmd = file.apply(Args::command());
    let matches = match cmd.clone().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            if let Some(note) = config_file::env_source(&cmd, &e, &argv) {
                let _ = writeln!(std::io::stderr(), "{note}");
            }
            std::process::exit(e.exit_code());
        }
    };
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if check {
        std::io::stdout()
            .write_all(config_file::effective(&cmd, &matches, &file).as_bytes())
            .context("writing the configuration")?;
        return check_files(&args).context("config check");
    }
    let result = main_with(args);
    if let Err(e) = &result
        && let Some(panicked) = e.downcast_ref::<HubPanicked>()
    {
        // Logged at error level by the gateway; the supervisor restarts us.
        let _ = writeln!(std::io::stderr(), "salon: {panicked}; exiting");
        std::process::exit(HubPanicked::EXIT_STATUS);
    }
    result
}

fn main_with(args: Args) -> anyhow::Result<()> {
    match &args.command {
        Some(Cmd::Token(t)) => return token_command(t),
        // Handled in `main` (its flags are the server's).
        Some(Cmd::Config(ConfigCmd::Check)) => {
            anyhow::bail!("usage: salon config check [--config FILE] [flags…]")
        }
        None => {}
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
    let policy = load_policy(&args.policy)?;
    // Dev default: a random HS256 key, and an agent link to print.
    let (auth_config, dev) = match &args.auth_config {
        Some(path) => (load_auth_config(path)?, None),
        None => {
            let secret = random_hex(32);
            let config = AuthConfig {
                keys: vec![KeyConfig {
                    id: "dev".to_owned(),
                    issuers: None,
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
    let tls = load_tls(&args)?;
    let turn = turn_config(&args)?;
    let oidc = oidc(&args)?;
    if let Some(oidc) = &oidc {
        // Not fatal: the provider may come up later; logins wait for it.
        match oidc.discover().await {
            Ok(()) => tracing::info!("OIDC provider discovered"),
            Err(e) => tracing::error!(
                error = %e,
                "OIDC provider unreachable: \"Se connecter\" answers 503 until discovery \
                 succeeds (retried after 2 s, then up to every 30 s)"
            ),
        }
        oidc.spawn_refresh();
    }
    let (events_tx, events_rx) = media_event_channel();
    let relay_ips = turn_relay_ips(turn.as_ref(), &args.turn_relay_ips);
    let config = MediadConfig {
        relay_ips,
        bind_ip: args.media_ip,
        announce_ips: configured_announce(&args)?,
        first_port: args.media_port,
        tcp: args.media_tcp_port,
        workers: args.workers,
        io_backend: args.io_backend,
        limits: salon_mediad::WorkerLimits {
            memory_budget_bytes: args.media_memory_budget_mib << 20,
            pacing: args.media_pacing,
            ..Default::default()
        },
        exit_on_worker_failure: true,
        fault_injection: args.enable_fault_injection,
        worker_capacity_pps: args.worker_capacity_pps,
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
    let scheme = if tls.is_some() { "https" } else { "http" };
    let redirect = match args.redirect_http {
        Some(a) => Some(
            RedirectListener::bind(a)
                .with_context(|| format!("binding the redirect listener {a} (--redirect-http)"))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let admin = match args.admin_listen.0 {
        Some(a) => Some(AdminListener::bind(a).with_context(|| {
            format!("binding the admin listener {a} (--admin-listen ADDR or off)")
        })?),
        None => None,
    };
    // Install the signal handlers before announcing the address, so a
    // SIGTERM sent right after the line is read still shuts down cleanly.
    let shutdown = shutdown_signal()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "Salon: {scheme}://{addr}/").context("writing to stdout")?;
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
            // In the fragment: browsers never send it, so the token stays
            // out of the logs of the server and of proxies.
            writeln!(
                out,
                "Agent (moderator) link: {scheme}://{addr}/{room}#jwt={token}"
            )
            .context("writing to stdout")?;
        }
        if let Some(admin) = &admin {
            let a = admin.local_addr().context("reading the admin address")?;
            writeln!(out, "Salon admin: http://{a}/").context("writing to stdout")?;
        }
        if let Some(redirect) = &redirect {
            let a = redirect
                .local_addr()
                .context("reading the redirect address")?;
            writeln!(out, "Salon redirect: http://{a}/").context("writing to stdout")?;
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
            oidc,
            deny_cooldown: Duration::from_secs(args.lobby_deny_cooldown_secs),
            default_last_n: (args.last_n > 0).then_some(args.last_n),
            reconnect_grace: Duration::from_secs(args.reconnect_grace_secs),
            admin,
            tls,
            redirect,
            metrics_on_public: args.metrics_on_public,
            allowed_hosts: args.allowed_hosts.clone(),
            trusted_proxies: args.trusted_proxies.clone(),
            max_connections: args.max_connections,
            max_connections_per_ip: args.max_connections_per_ip,
            max_http_per_ip: args.max_http_per_ip,
            join_deadline: Duration::from_secs(args.join_deadline_secs),
            ping_interval: Duration::from_secs(args.ping_interval_secs.max(1)),
            liveness_timeout: Duration::from_secs(args.liveness_timeout_secs),
            hub_stall_limit: Duration::from_secs(args.hub_stall_secs),
            msg_rate_per_sec: args.msg_rate,
            msg_burst: args.msg_burst,
            max_failed_joins: args.max_failed_joins,
            ws_outbound_bytes: args.ws_outbound_bytes,
            turn,
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
