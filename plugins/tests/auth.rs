//! Jitsi-compatible JWT verification.
#![allow(clippy::unwrap_used)] // tests may unwrap

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use salon_plugins::auth::{AuthConfig, AuthConfigError, AuthError, Authenticator};
use serde_json::{Value, json};

const NOW: u64 = 1_750_000_000;
const SECRET: &str = "a shared secret of reasonable length!";

fn key(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn config() -> AuthConfig {
    let toml_src = format!(
        r#"
issuers = ["salon", "idp.example"]
audiences = ["jitsi"]
leeway_secs = 30

[[keys]]
id = "shared"
issuers = ["salon"]
algorithms = ["HS256"]
secret = "{SECRET}"

[[keys]]
id = "rsa"
issuers = ["idp.example", "salon"]
algorithms = ["RS256"]
public_key_pem = """{rsa}"""

[[keys]]
id = "ec"
issuers = ["salon"]
algorithms = ["ES256"]
public_key_pem = """{ec}"""
"#,
        rsa = key("rsa_public.pem"),
        ec = key("ec_public.pem"),
    );
    toml::from_str(&toml_src).unwrap()
}

fn auth() -> Authenticator {
    Authenticator::new(&config()).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": "salon",
        "aud": "jitsi",
        "sub": "meet.example",
        "room": "conseil",
        "exp": NOW + 3600,
        "nbf": NOW - 60,
        "context": { "user": {
            "id": "u-42", "name": "Camille", "email": "camille@interieur.gouv.fr",
            "avatar": "https://example/a.png"
        } }
    })
}

fn sign(alg: Algorithm, claims: &Value, kid: Option<&str>) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(key("rsa_private.pem").as_bytes()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(key("ec_private.pem").as_bytes()).unwrap(),
        _ => unreachable!(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &key).unwrap()
}

fn with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    f(c.as_object_mut().unwrap());
    c
}

#[test]
fn valid_tokens_of_each_algorithm() {
    let a = auth();
    for (alg, kid) in [
        (Algorithm::HS256, None),
        (Algorithm::RS256, None),
        (Algorithm::ES256, None),
        (Algorithm::HS256, Some("shared")),
        (Algorithm::RS256, Some("rsa")),
        (Algorithm::ES256, Some("ec")),
    ] {
        let id = a
            .verify(&sign(alg, &claims(), kid), "conseil", NOW)
            .unwrap();
        assert_eq!(id.issuer, "salon");
        assert_eq!(id.sub.as_deref(), Some("meet.example"));
        assert_eq!(id.user_id.as_deref(), Some("u-42"));
        assert_eq!(id.name.as_deref(), Some("Camille"));
        assert_eq!(id.email.as_deref(), Some("camille@interieur.gouv.fr"));
        assert_eq!(id.avatar.as_deref(), Some("https://example/a.png"));
        assert!(!id.moderator);
        assert_eq!(id.room, "conseil");
        assert_eq!(id.claims["context"]["user"]["id"], "u-42");
    }
}

#[test]
fn expiry_and_not_before_use_the_callers_clock_with_leeway() {
    let a = auth();
    let t = sign(Algorithm::HS256, &claims(), None);
    assert!(a.verify(&t, "conseil", NOW + 3600 + 30).is_ok());
    assert_eq!(
        a.verify(&t, "conseil", NOW + 3600 + 31),
        Err(AuthError::Expired)
    );
    assert!(a.verify(&t, "conseil", NOW - 60 - 30).is_ok());
    assert_eq!(
        a.verify(&t, "conseil", NOW - 60 - 31),
        Err(AuthError::NotYetValid)
    );
    let no_exp = sign(
        Algorithm::HS256,
        &with(|c| {
            c.remove("exp");
        }),
        None,
    );
    assert_eq!(a.verify(&no_exp, "conseil", NOW), Err(AuthError::Malformed));
    let bad_exp = sign(
        Algorithm::HS256,
        &with(|c| {
            c.insert("exp".into(), json!("soon"));
        }),
        None,
    );
    assert_eq!(
        a.verify(&bad_exp, "conseil", NOW),
        Err(AuthError::Malformed)
    );
}

#[test]
fn unsigned_tokens_are_refused() {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    for alg in ["none", "None", "NONE", "HS1", ""] {
        let t = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&claims())
        );
        assert_eq!(
            auth().verify(&t, "conseil", NOW),
            Err(AuthError::AlgorithmNotAllowed),
            "{alg}"
        );
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // HS256 signed with the RS256 public key's PEM bytes as the secret.
    let pem = key("rsa_public.pem");
    let t = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    let mut cfg = config();
    cfg.keys.retain(|k| k.id == "rsa");
    let a = Authenticator::new(&cfg).unwrap();
    assert_eq!(
        a.verify(&t, "conseil", NOW),
        Err(AuthError::AlgorithmNotAllowed)
    );
    // Same with kid pointing at the RSA key, and with all keys configured.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa".into());
    let t2 = encode(&h, &claims(), &EncodingKey::from_secret(pem.as_bytes())).unwrap();
    assert_eq!(
        auth().verify(&t2, "conseil", NOW),
        Err(AuthError::AlgorithmNotAllowed)
    );
    assert_eq!(
        auth().verify(&t, "conseil", NOW),
        Err(AuthError::BadSignature)
    );
    // A key mixing HMAC and RSA algorithms cannot be configured.
    let mut cfg = config();
    cfg.keys[1].algorithms.push(Algorithm::HS256);
    assert!(matches!(
        Authenticator::new(&cfg),
        Err(AuthConfigError::AlgorithmMismatch(_))
    ));
    let mut cfg = config();
    cfg.keys[0].algorithms = vec![Algorithm::RS256];
    assert!(matches!(
        Authenticator::new(&cfg),
        Err(AuthConfigError::AlgorithmMismatch(_))
    ));
}

#[test]
fn signature_and_key_errors() {
    let a = auth();
    let t = sign(Algorithm::HS256, &claims(), None);
    // Flip one character of the signature.
    let mut bytes = t.clone().into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(
        a.verify(&tampered, "conseil", NOW),
        Err(AuthError::BadSignature)
    );
    // Claims swapped under a valid signature.
    let other = sign(
        Algorithm::HS256,
        &with(|c| {
            c.insert("room".into(), json!("*"));
        }),
        None,
    );
    let parts: Vec<&str> = t.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
    assert_eq!(
        a.verify(&spliced, "conseil", NOW),
        Err(AuthError::BadSignature)
    );
    // Unknown kid.
    let t = sign(Algorithm::HS256, &claims(), Some("nope"));
    assert_eq!(a.verify(&t, "conseil", NOW), Err(AuthError::UnknownKey));
    // A kid naming a key of another algorithm.
    let t = sign(Algorithm::ES256, &claims(), Some("rsa"));
    assert_eq!(
        a.verify(&t, "conseil", NOW),
        Err(AuthError::AlgorithmNotAllowed)
    );
}

#[test]
fn issuer_audience_and_room() {
    let a = auth();
    let t = sign(
        Algorithm::RS256,
        &with(|c| {
            c.insert("iss".into(), json!("evil"));
        }),
        None,
    );
    assert_eq!(a.verify(&t, "conseil", NOW), Err(AuthError::UnknownIssuer));
    let t = sign(
        Algorithm::RS256,
        &with(|c| {
            c.remove("iss");
        }),
        None,
    );
    assert_eq!(a.verify(&t, "conseil", NOW), Err(AuthError::UnknownIssuer));
    let t = sign(
        Algorithm::RS256,
        &with(|c| {
            c.insert("iss".into(), json!("idp.example"));
        }),
        None,
    );
    assert!(a.verify(&t, "conseil", NOW).is_ok());
    let t = sign(
        Algorithm::RS256,
        &with(|c| {
            c.insert("aud".into(), json!("other"));
        }),
        None,
    );
    assert_eq!(a.verify(&t, "conseil", NOW), Err(AuthError::WrongAudience));
    let t = sign(
        Algorithm::RS256,
        &with(|c| {
            c.remove("aud");
        }),
        None,
    );
    assert_eq!(a.verify(&t, "conseil", NOW), Err(AuthError::WrongAudience));
    let t = sign(
        Algorithm::RS256,
        &with(|c| {
            c.insert("aud".into(), json!(["x", "jitsi"]));
        }),
        None,
    );
    assert!(a.verify(&t, "conseil", NOW).is_ok());

    // Room A's token for room B.
    let t = sign(Algorithm::ES256, &claims(), None);
    assert_eq!(a.verify(&t, "autre", NOW), Err(AuthError::WrongRoom));
    for variant in ["Conseil", "CONSEIL", "conseiL"] {
        assert_eq!(
            a.verify(&t, variant, NOW),
            Err(AuthError::WrongRoom),
            "room names are case-sensitive: a token for `conseil` does not open {variant}"
        );
    }
    let any = sign(
        Algorithm::ES256,
        &with(|c| {
            c.insert("room".into(), json!("*"));
        }),
        None,
    );
    assert!(a.verify(&any, "autre", NOW).is_ok());
    let none = sign(
        Algorithm::ES256,
        &with(|c| {
            c.remove("room");
        }),
        None,
    );
    assert_eq!(a.verify(&none, "conseil", NOW), Err(AuthError::Malformed));
}

#[test]
fn a_key_verifies_only_the_issuers_it_is_bound_to() {
    let a = auth();
    let from_idp = with(|c| {
        c.insert("iss".into(), json!("idp.example"));
    });
    // idp.example's own key (rsa) verifies its token.
    assert!(
        a.verify(&sign(Algorithm::RS256, &from_idp, None), "conseil", NOW)
            .is_ok()
    );
    // A token claiming idp.example, signed with the keys of `salon`: refused,
    // with or without a kid naming the key.
    for (alg, kid) in [
        (Algorithm::HS256, None),
        (Algorithm::HS256, Some("shared")),
        (Algorithm::ES256, None),
        (Algorithm::ES256, Some("ec")),
    ] {
        assert_eq!(
            a.verify(&sign(alg, &from_idp, kid), "conseil", NOW),
            Err(AuthError::KeyNotForIssuer),
            "{alg:?} {kid:?}"
        );
    }
    // The same keys still verify `salon`'s tokens.
    assert!(
        a.verify(&sign(Algorithm::HS256, &claims(), None), "conseil", NOW)
            .is_ok()
    );
}

#[test]
fn key_issuers_are_checked_and_a_single_issuer_binds_every_key() {
    // Several accepted issuers: every key must name its own.
    let mut cfg = config();
    cfg.keys[0].issuers = None;
    assert!(matches!(
        Authenticator::new(&cfg),
        Err(AuthConfigError::KeyIssuers(id)) if id == "shared"
    ));
    let mut cfg = config();
    cfg.keys[1].issuers = Some(vec!["elsewhere".into()]);
    assert!(matches!(
        Authenticator::new(&cfg),
        Err(AuthConfigError::KeyIssuers(_))
    ));
    let mut cfg = config();
    cfg.keys[2].issuers = Some(Vec::new());
    assert!(matches!(
        Authenticator::new(&cfg),
        Err(AuthConfigError::KeyIssuers(_))
    ));
    // A pre-binding config with one issuer keeps working unchanged.
    let mut cfg = config();
    cfg.issuers = vec!["salon".into()];
    for k in &mut cfg.keys {
        k.issuers = None;
    }
    let a = Authenticator::new(&cfg).unwrap();
    assert!(
        a.verify(&sign(Algorithm::HS256, &claims(), None), "conseil", NOW)
            .is_ok()
    );
}

#[test]
fn moderator_flag_in_both_forms() {
    let a = auth();
    let cases = [
        (
            with(|c| {
                c["context"]["user"]["moderator"] = json!(true);
            }),
            true,
        ),
        (
            with(|c| {
                c["context"]["user"]["moderator"] = json!("true");
            }),
            true,
        ),
        (
            with(|c| {
                c["context"]["user"]["moderator"] = json!("false");
            }),
            false,
        ),
        (
            with(|c| {
                c["context"]["user"]["moderator"] = json!(1);
            }),
            false,
        ),
        (
            with(|c| {
                c.insert("moderator".into(), json!(true));
            }),
            true,
        ),
        (
            with(|c| {
                c.insert("moderator".into(), json!("TRUE"));
            }),
            true,
        ),
        (claims(), false),
    ];
    for (i, (c, want)) in cases.into_iter().enumerate() {
        let id = a
            .verify(&sign(Algorithm::HS256, &c, None), "conseil", NOW)
            .unwrap();
        assert_eq!(id.moderator, want, "case {i}");
    }
}

#[test]
fn config_is_checked() {
    let mut cfg = config();
    cfg.issuers.clear();
    assert!(matches!(
        Authenticator::new(&cfg),
        Err(AuthConfigError::NoIssuerOrAudience)
    ));
    let mut cfg = config();
    cfg.keys[2].public_key_pem = Some("not a pem".into());
    assert!(matches!(
        Authenticator::new(&cfg),
        Err(AuthConfigError::BadPem(_))
    ));
    let mut cfg = config();
    cfg.keys[0].public_key_pem = Some(key("rsa_public.pem"));
    assert!(matches!(
        Authenticator::new(&cfg),
        Err(AuthConfigError::KeyMaterial(_))
    ));
    let mut cfg = config();
    cfg.keys[1].id = "shared".into();
    assert!(matches!(
        Authenticator::new(&cfg),
        Err(AuthConfigError::DuplicateId(_))
    ));
    // JSON works too, and the secret is redacted from Debug.
    let json_cfg: AuthConfig = serde_json::from_value(json!({
        "keys": [{ "id": "k", "algorithms": ["HS256"], "secret": "hunter2" }],
        "issuers": ["salon"], "audiences": ["jitsi"]
    }))
    .unwrap();
    assert_eq!(json_cfg.leeway_secs, 30);
    assert!(!format!("{json_cfg:?}").contains("hunter2"));
    assert!(Authenticator::new(&json_cfg).is_ok());
}

/// Arbitrary bytes and mutations of valid tokens never panic (seeded, bounded).
#[test]
fn mutated_tokens_never_panic() {
    let a = auth();
    let seeds = [
        sign(Algorithm::HS256, &claims(), None),
        sign(Algorithm::RS256, &claims(), Some("rsa")),
        sign(Algorithm::ES256, &claims(), None),
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = std::time::Instant::now();
    let mut accepted = 0;
    for i in 0..3000 {
        let mut t = seeds[i % seeds.len()].clone().into_bytes();
        match rnd() % 4 {
            0 => {
                // Random bytes.
                let n = (rnd() % 300) as usize;
                t = (0..n).map(|_| rnd() as u8).collect();
            }
            1 => {
                for _ in 0..1 + rnd() % 4 {
                    let p = (rnd() as usize) % t.len();
                    t[p] = rnd() as u8;
                }
            }
            2 => {
                let p = (rnd() as usize) % t.len();
                t.truncate(p);
            }
            _ => {
                let p = (rnd() as usize) % t.len();
                t.insert(p, b".-_="[(rnd() % 4) as usize]);
            }
        }
        let s = String::from_utf8_lossy(&t);
        if a.verify(&s, "conseil", NOW).is_ok() {
            accepted += 1;
        }
        if start.elapsed().as_secs_f64() > 1.5 {
            break;
        }
    }
    // Base64 padding bits can let a rare mutation through; never many.
    assert!(accepted < 30, "{accepted}");
}
