//! Sign in and out against the ollama.com stand-in (`olm-verify --serve
//! --stand-in`): connect → olm-whoami (0) → olm-revoke (0, key gone) →
//! olm-whoami (1), step by step and as one shell script.
//!
//! The stand-in listens on 127.0.0.1; nothing else is contacted.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;

use olm_tests::{vectors_dir, Sandbox};

/// A sandbox whose `$HOME/.ollama` holds vector key k1, and a stand-in for
/// ollama.com that does not know it yet.
fn setup() -> (Sandbox, olm_tests::serve::Served, std::path::PathBuf) {
    let sb = Sandbox::new();
    let dir = sb.home().join(".ollama");
    fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id_ed25519");
    fs::copy(vectors_dir().join("keys/k1"), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fs::copy(
        vectors_dir().join("keys/k1.pub"),
        dir.join("id_ed25519.pub"),
    )
    .unwrap();
    fs::create_dir(sb.path("stand-in")).unwrap();
    let ak = sb.path("stand-in").join("authorized_keys");
    let server = sb.serve(&["--stand-in", "--authorized-keys", ak.to_str().unwrap()]);
    (sb, server, ak)
}

#[test]
fn connect_whoami_revoke_whoami() {
    let (sb, server, ak) = setup();
    let base = server.url.as_str();
    let k1_line = {
        let text = fs::read_to_string(vectors_dir().join("keys/k1.pub")).unwrap();
        let mut parts = text.split_whitespace();
        format!("{} {}", parts.next().unwrap(), parts.next().unwrap())
    };

    // Not connected yet: 1, and the sign-in URL on stdout.
    let out = sb.run("olm-whoami", ["--base", base], b"");
    out.assert_error(1, "olm-whoami", "You are not signed in to ollama.com");
    let signin = out.text();
    assert!(signin.starts_with(&format!("{base}/connect?")), "{signin}");

    // Connect, as a browser signed in to ollama.com would.
    let url = sb.run(
        "olm-connect-url",
        ["--base", base, "--name", "ci box", "--backend", "file"],
        b"",
    );
    url.assert_code(0);
    let url = url.text();
    let path = url.trim().strip_prefix(base).expect("URL on the base");
    assert_eq!(server.request("GET", path, &[]).0, 200);
    assert!(fs::read_to_string(&ak).unwrap().contains(&k1_line));

    // Signed in: 0, the account.
    let out = sb.run("olm-whoami", ["--base", base], b"");
    out.assert_code(0);
    let lines = out.lines();
    assert_eq!(lines[0], "name: ci box", "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("email: ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("plan: ")), "{lines:?}");
    let out = sb.run("olm-whoami", ["--base", base, "--json"], b"");
    out.assert_code(0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["name"], "ci box");
    assert!(json["id"].is_string());

    // Keep a copy, to ask the stand-in about the old key afterwards.
    let old = sb.path("old.key");
    fs::copy(sb.ollama_key(), &old).unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o600)).unwrap();

    // Revoke: 0, the message, the key gone here and on the stand-in.
    let out = sb.run("olm-revoke", ["--base", base], b"");
    out.assert_code(0);
    assert_eq!(out.lines(), vec!["Signed out from ollama.com"]);
    assert!(
        out.stderr.contains("removed key from file backend"),
        "{}",
        out.stderr
    );
    assert!(!sb.ollama_key().exists());
    assert!(!sb.ollama_key().with_extension("pub").exists());
    assert!(!fs::read_to_string(&ak).unwrap().contains(&k1_line));

    // Afterwards: no key here (1), and the old key is refused there (1).
    sb.run("olm-whoami", ["--base", base], b"").assert_error(
        1,
        "olm-whoami",
        "You are not signed in to ollama.com",
    );
    let out = sb.run(
        "olm-whoami",
        ["--base", base, "-k", old.to_str().unwrap()],
        b"",
    );
    out.assert_error(1, "olm-whoami", "answered 401");
    // Revoking it again: the stand-in says 401, the copy is untouched.
    let before = fs::read(&old).unwrap();
    let out = sb.run(
        "olm-revoke",
        ["--base", base, "-k", old.to_str().unwrap()],
        b"",
    );
    out.assert_error(1, "olm-revoke", "You are not signed in to ollama.com");
    assert_eq!(fs::read(&old).unwrap(), before);

    // The stand-in checked every signature: no request of ours was refused
    // for its token, only for the key not being connected.
    let log = server.log();
    for bad in [
        "signature does not match",
        "malformed",
        "replayed",
        "bad request",
    ] {
        assert!(!log.contains(bad), "{bad}: {log}");
    }
}

#[test]
fn the_flow_as_one_script() {
    let (sb, server, _ak) = setup();
    // bash's /dev/tcp plays the browser, so the script needs no curl.
    let script = format!(
        r#"
set -eu
export OLLAMA_CLOUD_BASE_URL={base}
rc=0; olm-whoami >/dev/null || rc=$?; [ "$rc" = 1 ] || {{ echo "whoami before: $rc"; exit 10; }}
url=$(olm-connect-url --name ci-runner </dev/null)
exec 3<>/dev/tcp/127.0.0.1/{port}
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "${{url#$OLLAMA_CLOUD_BASE_URL}}" >&3
head -n1 <&3
exec 3<&-
olm-whoami
olm-revoke
test ! -e "$HOME/.ollama/id_ed25519"
rc=0; olm-whoami || rc=$?; [ "$rc" = 1 ] || {{ echo "whoami after: $rc"; exit 11; }}
echo flow-ok
"#,
        base = server.url,
        port = server.addr.rsplit(':').next().unwrap(),
    );
    let out = sb.sh(&script);
    out.assert_code(0);
    let text = out.text();
    assert!(text.contains(" 200 "), "{text}");
    assert!(text.contains("name: ci-runner"), "{text}");
    assert!(text.contains("Signed out from ollama.com"), "{text}");
    assert!(text.ends_with("flow-ok\n"), "{text}");
}

#[test]
fn the_readme_rotation_recipe() {
    let (sb, server, ak) = setup();
    let script = format!(
        r#"
set -eu
export OLLAMA_CLOUD_BASE_URL={base}
connect() {{  # what a browser signed in to ollama.com does with the URL
  exec 3<>/dev/tcp/127.0.0.1/{port}
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "${{1#$OLLAMA_CLOUD_BASE_URL}}" >&3
  head -n1 <&3 >/dev/null
  exec 3<&-
}}
connect "$(olm-connect-url --name old </dev/null)"
olm-whoami >/dev/null
# The recipe, as the README has it.
mv ~/.ollama/id_ed25519 ~/old.key && rm ~/.ollama/id_ed25519.pub
olm-keygen -o ~/.ollama/id_ed25519 >/dev/null
connect "$(olm-connect-url --name new </dev/null)"
olm-whoami
olm-revoke -k ~/old.key && rm ~/old.key
echo rotated
"#,
        base = server.url,
        port = server.addr.rsplit(':').next().unwrap(),
    );
    let out = sb.sh(&script);
    out.assert_code(0);
    assert!(out.text().contains("name: new"), "{}", out.text());
    assert!(
        out.text()
            .ends_with("Signed out from ollama.com\nrotated\n"),
        "{}",
        out.text()
    );
    // The new key is still here and still connected; the old one is gone
    // from the stand-in.
    assert!(sb.ollama_key().exists());
    let listed = fs::read_to_string(&ak).unwrap();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.trim_end().ends_with(" new"), "{listed}");
    sb.run("olm-whoami", ["--base", server.url.as_str()], b"")
        .assert_code(0);
}

#[test]
fn the_readme_ci_check() {
    let (sb, server, _ak) = setup();
    let key = fs::read_to_string(vectors_dir().join("keys/k1")).unwrap();
    // No stored key in this job: the key comes from a secret.
    fs::remove_file(sb.ollama_key()).unwrap();
    let step =
        "olm-whoami --key-env OLM_KEY || { olm-connect-url --key-env OLM_KEY --qr; exit 1; }";
    let run = || {
        let mut c = sb.cmd("bash");
        c.arg("-c")
            .arg(step)
            .env("OLM_KEY", &key)
            .env("OLLAMA_CLOUD_BASE_URL", &server.url);
        olm_tests::run_with_stdin(c, b"")
    };
    let out = run();
    out.assert_code(1);
    // Both URLs (the server's and olm-connect-url's) name this key.
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let encoded = libauth::PrivateKey::from_openssh(key.as_bytes())
        .unwrap()
        .public_key()
        .encoded();
    for l in &lines {
        assert!(l.ends_with(&format!("key={encoded}")), "{l}");
    }
    let path = lines[1].strip_prefix(server.url.as_str()).unwrap();
    assert_eq!(server.request("GET", path, &[]).0, 200);
    let out = run();
    out.assert_code(0);
    assert!(out.text().starts_with("name: "), "{}", out.text());
}
