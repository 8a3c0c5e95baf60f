//! `salon.toml`: precedence (file < environment < flags), errors that name
//! the line, secrets never printed, the sample file in step with the
//! flags, and a server that runs with what the file says.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SALON: &str = env!("CARGO_BIN_EXE_salon");
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "salon-config-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        .into()
}

/// `salon config check` with `args`, `env`, and no `SALON_*` from the
/// environment of the test run.
fn check(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(SALON);
    cmd.args(["config", "check"]).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SALON_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn policy() -> String {
    format!("{REPO}/lua/policy.lua")
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{out}"))
}

#[test]
fn the_file_is_overridden_by_the_environment_and_both_by_flags() {
    let d = dir();
    let file = d.join("salon.toml");
    std::fs::write(
        &file,
        "workers = 2\nmedia-port = 12000\nbrand_name = \"Ville\"\nallowed-host = [\"a.example.fr\", \"b.example.fr\"]\n",
    )
    .unwrap();
    let out = check(
        &[
            "--config",
            file.to_str().unwrap(),
            "--brand-name",
            "Métropole",
            "--policy",
            &policy(),
        ],
        &[("SALON_WORKERS", "3"), ("SALON_LAST_N", "7")],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let f = file.display();
    assert_eq!(
        line(&text, "media-port"),
        format!("media-port = 12000  # {f}:2")
    );
    assert_eq!(
        line(&text, "workers"),
        "workers = 3  # environment SALON_WORKERS"
    );
    assert_eq!(
        line(&text, "last-n"),
        "last-n = 7  # environment SALON_LAST_N"
    );
    assert_eq!(
        line(&text, "brand-name"),
        "brand-name = \"Métropole\"  # command line"
    );
    assert_eq!(
        line(&text, "allowed-host"),
        format!("allowed-host = [\"a.example.fr\", \"b.example.fr\"]  # {f}:4")
    );
    assert_eq!(
        line(&text, "listen"),
        "listen = \"127.0.0.1:8080\"  # default"
    );
    // SALON_CONFIG names the file when --config does not.
    let out = check(
        &["--policy", &policy()],
        &[("SALON_CONFIG", file.to_str().unwrap())],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        line(&text, "workers").ends_with(&format!("{f}:1")),
        "{text}"
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn unknown_keys_and_bad_values_stop_with_the_file_and_line() {
    let d = dir();
    let file = d.join("salon.toml");
    std::fs::write(&file, "# a comment\nworkers = 2\nmedai-port = 12000\n").unwrap();
    let out = check(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        format!(
            "salon: {}:3: unknown key `medai-port` (did you mean `media-port`?)",
            file.display()
        )
    );
    std::fs::write(&file, "workers = 2\n\nmedia-port = \"dix mille\"\n").unwrap();
    let out = check(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!("salon: {}:3: `media-port`:", file.display())),
        "{err}"
    );
    // Not TOML at all.
    std::fs::write(&file, "workers = 2\nmedia-port = = 3\n").unwrap();
    let out = check(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!("salon: {}:2:", file.display())),
        "{err}"
    );
    // And the server does not start with it either.
    let out = Command::new(SALON)
        .args(["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn key_material_is_never_printed_and_the_files_named_are_loaded() {
    let d = dir();
    let secret = "hunter2-ne-doit-jamais-sortir-0123456789";
    let auth = d.join("auth.toml");
    std::fs::write(
        &auth,
        format!(
            "issuers = [\"salon-test\"]\naudiences = [\"salon\"]\n[[keys]]\nid = \"k1\"\nalgorithms = [\"HS256\"]\nsecret = \"{secret}\"\n"
        ),
    )
    .unwrap();
    let file = d.join("salon.toml");
    std::fs::write(
        &file,
        format!("auth-config = {:?}\n", auth.to_str().unwrap()),
    )
    .unwrap();
    let out = check(
        &["--config", file.to_str().unwrap(), "--policy", &policy()],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(secret), "{all}");
    assert!(all.contains("auth-config = "), "{all}");
    // A broken auth config is found by the check, not at the first join.
    std::fs::write(&auth, "issuers = [\"salon-test\"]\n").unwrap();
    let out = check(
        &["--config", file.to_str().unwrap(), "--policy", &policy()],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config check"), "{err}");
    assert!(!err.contains(secret), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn the_announced_host_name_is_looked_up_and_checked() {
    // `localhost` resolves on any machine (/etc/hosts); with media bound
    // to 127.0.0.1 only its IPv4 address can be announced.
    let out = check(
        &[
            "--policy",
            &policy(),
            "--media-ip",
            "127.0.0.1",
            "--announce-host",
            "localhost",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ICE candidates announce 127.0.0.1\n"),
        "{stderr}"
    );
    // A name that does not resolve, or both ways at once, stops the check.
    let out = check(
        &[
            "--policy",
            &policy(),
            "--announce-host",
            "salon-nowhere.invalid",
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--announce-host") && err.contains("does not resolve"),
        "{err}"
    );
    let out = check(
        &[
            "--policy",
            &policy(),
            "--announce-host",
            "localhost",
            "--announce-ip",
            "192.0.2.1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// The keys of `deploy/salon.toml`, commented out or not.
fn sample_keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix('#').unwrap_or(l);
            let (key, _) = l.split_once(" =")?;
            (!key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .then(|| key.to_owned())
        })
        .collect()
}

#[test]
fn the_sample_file_names_every_flag_and_passes_the_check() {
    let sample = Path::new(REPO).join("deploy/salon.toml");
    let out = check(&["--policy", &policy()], &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    let mut flags: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("# effective"))
        .filter_map(|l| {
            let l = l.strip_prefix("# ").unwrap_or(l);
            l.split([' ']).next().map(str::to_owned)
        })
        .collect();
    flags.sort();
    let mut keys = sample_keys(&sample);
    keys.sort();
    assert_eq!(
        keys, flags,
        "deploy/salon.toml and the flags differ: regenerate with scripts/salon-toml.py"
    );
    // Its uncommented values parse (the files it names are the flags'
    // business here: they live under /etc/salon on a real server).
    let out = check(
        &[
            "--config",
            sample.to_str().unwrap(),
            "--policy",
            &policy(),
            "--auth-config",
            &format!("{REPO}/signaling-gateway/tests/data/auth-sample.toml"),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_server_runs_with_what_the_file_says() {
    let d = dir();
    let file = d.join("salon.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\nmedia-port = 0\nadmin-listen = \"off\"\nbrand-name = \"Ville de Test\"\npolicy = {:?}\nio-backend = \"epoll\"\n",
            policy()
        ),
    )
    .unwrap();
    let mut child = Command::new(SALON)
        .args(["--config", file.to_str().unwrap()])
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
    // The client reads the brand name from the file.
    let body = http_get(&addr, "/config.json");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(body.contains("Ville de Test"), "{body}");
    std::fs::remove_dir_all(d).unwrap();
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// A repeatable flag set from the environment takes a comma-separated
/// list: `SALON_ANNOUNCE_IP` is the only way to give a dual-stack
/// container both its announced addresses (one variable, one value each).
#[test]
fn a_repeatable_flag_takes_a_list_from_the_environment() {
    let out = check(
        &["--policy", &policy(), "--media-ip", "::"],
        &[("SALON_ANNOUNCE_IP", "203.0.113.10,2001:db8::10")],
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        line(&stdout, "announce-ip")
            .starts_with(r#"announce-ip = ["203.0.113.10", "2001:db8::10"]"#),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ICE candidates announce 203.0.113.10, 2001:db8::10\n"),
        "{stderr}"
    );
    let out = check(
        &["--policy", &policy()],
        &[("SALON_TRUSTED_PROXY", "127.0.0.1,::1")],
    );
    assert!(out.status.success(), "{out:?}");
}

/// A bad value from a `SALON_*` variable is refused naming the variable,
/// not only the flag the operator never typed.
#[test]
fn a_bad_value_from_the_environment_names_its_variable() {
    let out = check(
        &["--policy", &policy()],
        &[("SALON_MEDIA_PORT", "dix-mille")],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'dix-mille'"), "{err}");
    assert!(
        err.contains("environment variable SALON_MEDIA_PORT"),
        "{err}"
    );
    // On the command line, it is the flag's.
    let out = check(&["--policy", &policy(), "--media-port", "dix-mille"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("environment variable"), "{err}");
}
