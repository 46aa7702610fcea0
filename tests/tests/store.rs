//! The credential store end to end: `olm-store` and the tools that read
//! the key from it, in real pipelines, against files Ollama and ssh-keygen
//! wrote, and against a real Secret Service (gnome-keyring inside
//! `dbus-run-session`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libauth::{PrivateKey, PublicKey};
use olm_tests::{run_with_stdin, vectors_dir, Sandbox};

fn vector_text(name: &str) -> String {
    fs::read_to_string(vectors_dir().join("keys").join(name)).expect("vector key")
}

fn public_line(name: &str) -> String {
    PrivateKey::from_openssh(vector_text(name).as_bytes())
        .expect("vector key parses")
        .public_key()
        .to_line()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

fn pub_path(sb: &Sandbox) -> PathBuf {
    sb.home().join(".ollama").join("id_ed25519.pub")
}

/// Puts vector key `name` into the sandbox's file store.
fn put(sb: &Sandbox, name: &str) {
    sb.run("olm-store", ["put"], vector_text(name).as_bytes())
        .assert_code(0);
}

#[test]
fn keygen_put_connect_in_one_line() {
    let sb = Sandbox::new();
    let out = sb.sh("olm-keygen | olm-store put | olm-connect-url --name box");
    out.assert_code(0);
    let url = out.text();
    let key = fs::read(sb.ollama_key()).expect("the key is where Ollama looks");
    let key = PrivateKey::from_openssh(&key).expect("stored key parses");
    assert_eq!(
        url.trim(),
        format!(
            "https://ollama.com/connect?name=box&key={}",
            key.public_key().encoded()
        )
    );
    // Modes: folder made by us 0700, key 0600, .pub 0644.
    assert_eq!(mode(&sb.home().join(".ollama")), 0o700);
    assert_eq!(mode(&sb.ollama_key()), 0o600);
    assert_eq!(mode(&pub_path(&sb)), 0o644);
    // The tools now use the stored key by default.
    let out = sb.sh("olm-connect-url --name box </dev/null");
    out.assert_code(0);
    assert_eq!(out.text(), url);
}

#[test]
fn stored_file_is_read_by_ssh_keygen() {
    let sb = Sandbox::new();
    let out = sb.run("olm-store", ["put"], vector_text("k2").as_bytes());
    out.assert_code(0);
    assert_eq!(out.text().trim(), public_line("k2"));
    // Byte for byte what ssh-keygen wrote, comment included.
    assert_eq!(
        fs::read_to_string(sb.ollama_key()).unwrap(),
        vector_text("k2")
    );
    let out = sb.run(
        "ssh-keygen",
        ["-y".as_ref(), "-f".as_ref(), sb.ollama_key().as_os_str()],
        b"",
    );
    out.assert_code(0);
    let pub_line = PublicKey::from_line(&out.text()).expect("ssh-keygen -y line");
    assert_eq!(pub_line.to_line(), public_line("k2"));
    let pub_file = fs::read_to_string(pub_path(&sb)).unwrap();
    assert_eq!(pub_file, format!("{} user@laptop\n", public_line("k2")));
}

#[test]
fn key_written_by_ssh_keygen_is_read_in_place() {
    let sb = Sandbox::new();
    // As Ollama does: the folder 0755, made by someone else.
    let out = sb.sh(
        "mkdir -m 755 \"$HOME/.ollama\" && ssh-keygen -q -t ed25519 -N '' -C me@host -f \"$HOME/.ollama/id_ed25519\"",
    );
    out.assert_code(0);
    let before = fs::read(sb.ollama_key()).unwrap();
    let inode = fs::metadata(sb.ollama_key()).unwrap().ino();
    let ssh_line = sb
        .run(
            "ssh-keygen",
            ["-y".as_ref(), "-f".as_ref(), sb.ollama_key().as_os_str()],
            b"",
        )
        .text();
    let ssh_line = PublicKey::from_line(&ssh_line).unwrap().to_line();

    let out = sb.run("olm-store", ["get", "--public"], b"");
    out.assert_code(0);
    assert_eq!(out.text().trim(), ssh_line);
    let out = sb.run("olm-store", ["status"], b"");
    out.assert_code(0);
    assert!(out.text().contains("comment: me@host"), "{}", out.text());
    let out = sb.run("olm-store", ["get"], b"");
    out.assert_code(0);
    assert_eq!(out.stdout, before, "get gives the file back byte for byte");
    // Putting it again changes nothing, not even the inode; the folder keeps 0755.
    let out = sb.sh("olm-store get | olm-store put");
    out.assert_code(0);
    assert!(out.stderr.contains("nothing changed"), "{}", out.stderr);
    assert_eq!(fs::read(sb.ollama_key()).unwrap(), before);
    assert_eq!(fs::metadata(sb.ollama_key()).unwrap().ino(), inode);
    assert_eq!(mode(&sb.home().join(".ollama")), 0o755);
    // olm-sign signs with it by default: the same token as with -k.
    let with_store = sb.run("olm-sign", ["-X", "POST", "/api/me", "--ts", "1"], b"");
    with_store.assert_code(0);
    let with_k = sb.run(
        "olm-sign",
        [
            "-k".as_ref(),
            sb.ollama_key().as_os_str(),
            "-X".as_ref(),
            "POST".as_ref(),
            "/api/me".as_ref(),
            "--ts".as_ref(),
            "1".as_ref(),
        ],
        b"",
    );
    assert_eq!(with_store.stdout, with_k.stdout);
}

#[test]
fn key_written_by_ollama_is_read_in_place() {
    // Ollama: no comment, .pub without comment, folder 0755.
    let sb = Sandbox::new();
    let dir = sb.home().join(".ollama");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(vectors_dir().join("keys/k1"), sb.ollama_key()).unwrap();
    fs::set_permissions(sb.ollama_key(), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(pub_path(&sb), format!("{}\n", public_line("k1"))).unwrap();
    let out = sb.run("olm-store", ["status"], b"");
    out.assert_code(0);
    assert!(out.text().contains(&public_line("k1")), "{}", out.text());
    assert!(
        out.text().contains("fingerprint: SHA256:"),
        "{}",
        out.text()
    );
    assert!(!out.text().contains("problem"), "{}", out.text());
    let out = sb.run("olm-connect-url", ["--name", "n"], b"");
    out.assert_code(0);
}

#[test]
fn different_key_needs_force_and_same_key_is_a_no_op() {
    let sb = Sandbox::new();
    put(&sb, "k1");
    let before = fs::read(sb.ollama_key()).unwrap();
    let out = sb.run("olm-store", ["put"], vector_text("k2").as_bytes());
    out.assert_error(1, "olm-store", "already holds another key (SHA256:");
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(fs::read(sb.ollama_key()).unwrap(), before);
    assert_eq!(
        fs::read_to_string(pub_path(&sb)).unwrap().trim(),
        public_line("k1")
    );
    // The same key again: exit 0, nothing changed.
    let out = sb.run("olm-store", ["put"], vector_text("k1").as_bytes());
    out.assert_code(0);
    assert!(out.stderr.contains("nothing changed"), "{}", out.stderr);
    // --force replaces key and .pub together.
    let out = sb.run(
        "olm-store",
        ["put", "--force"],
        vector_text("k2").as_bytes(),
    );
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(sb.ollama_key()).unwrap(),
        vector_text("k2")
    );
    assert!(fs::read_to_string(pub_path(&sb))
        .unwrap()
        .starts_with(&public_line("k2")));
    // Bad input is refused before anything is touched.
    let out = sb.run("olm-store", ["put", "--force"], b"not a key");
    out.assert_error(2, "olm-store", "stdin");
    assert_eq!(
        fs::read_to_string(sb.ollama_key()).unwrap(),
        vector_text("k2")
    );
}

#[test]
fn status_reports_each_problem_naming_the_file() {
    let sb = Sandbox::new();
    let key = sb.ollama_key();
    let shown = key.display().to_string();

    // Errors quote the path, as every tool does; the listing shows it plain.
    let out = sb.run("olm-store", ["status"], b"");
    out.assert_error(1, "olm-store", &format!("no key in {shown:?}"));
    assert!(
        out.text().contains(&format!("key: {shown}\n")),
        "{}",
        out.text()
    );

    put(&sb, "k1");
    sb.run("olm-store", ["status"], b"").assert_code(0);

    // Readable by others: refused by the tools, reported by status.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = sb.run("olm-store", ["status"], b"");
    out.assert_error(1, "olm-store", "permissions 0644 are too open");
    assert!(out
        .text()
        .contains(&format!("problem: {shown}: permissions 0644")));
    assert!(out.stderr.contains("hint: chmod 600"), "{}", out.stderr);
    let out = sb.run("olm-sign", ["-X", "GET", "/x"], b"");
    out.assert_error(2, "olm-sign", "permissions 0644 are too open");
    assert!(
        out.stderr.contains(&format!("hint: chmod 600 \"{shown}\"")),
        "{}",
        out.stderr
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();

    // A .pub naming another key.
    fs::write(pub_path(&sb), format!("{}\n", public_line("k2"))).unwrap();
    let out = sb.run("olm-store", ["status"], b"");
    out.assert_error(1, "olm-store", "names another key");
    assert!(out.stderr.contains("id_ed25519.pub"), "{}", out.stderr);
    // ... which the documented fix repairs.
    sb.sh("olm-store get | olm-store put").assert_code(0);
    sb.run("olm-store", ["status"], b"").assert_code(0);

    // An empty key file.
    fs::write(&key, b"").unwrap();
    let out = sb.run("olm-store", ["status"], b"");
    out.assert_error(1, "olm-store", &format!("{shown:?}: the file is empty"));
    let out = sb.run("olm-connect-url", [] as [&str; 0], b"");
    out.assert_error(2, "olm-connect-url", &shown);

    // A damaged (truncated) key file.
    let text = vector_text("k1");
    fs::write(&key, &text[..text.len() / 2]).unwrap();
    let out = sb.run("olm-store", ["status"], b"");
    out.assert_error(1, "olm-store", &format!("{shown:?}: the key is damaged"));
    // And put refuses to replace it without --force; `olm-store get` cannot
    // back it up, so the hint says to copy the file.
    let out = sb.run("olm-store", ["put"], vector_text("k1").as_bytes());
    out.assert_error(1, "olm-store", "a key file olm cannot read");
    assert!(
        out.stderr.contains(&format!(
            "copy the file first if you may need it again (`cp -p {shown:?} \"{shown}.bak\"`)"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("olm-store get"), "{}", out.stderr);
    assert_eq!(fs::read_to_string(&key).unwrap(), &text[..text.len() / 2]);
}

#[test]
fn get_delete_and_exit_codes() {
    let sb = Sandbox::new();
    let out = sb.run("olm-store", ["get", "--public"], b"");
    out.assert_error(1, "olm-store", "no key in");
    let out = sb.run("olm-store", ["delete"], b"");
    out.assert_error(1, "olm-store", "no key in");
    assert!(
        !sb.home().join(".ollama").exists(),
        "delete made the folder"
    );
    put(&sb, "k3");
    let out = sb.run("olm-store", ["get"], b"");
    out.assert_code(0);
    assert_eq!(out.text(), vector_text("k3"));
    sb.sh("printf 'key.one\\n' | olm-store put --api-key")
        .assert_code(0);
    sb.run("olm-store", ["delete"], b"").assert_code(0);
    assert!(!sb.ollama_key().exists() && !pub_path(&sb).exists());
    // The API key stays.
    let out = sb.run("olm-store", ["get", "--api-key"], b"");
    out.assert_code(0);
    assert_eq!(out.text(), "key.one\n");
    sb.run("olm-store", ["delete"], b"")
        .assert_error(1, "olm-store", "no key in");
    // No key: the signing tools say where they looked.
    let out = sb.run("olm-sign", ["-X", "GET", "/x"], b"");
    out.assert_error(
        2,
        "olm-sign",
        &format!("no key in {:?}", sb.ollama_key().display().to_string()),
    );
    // Backend names are case-insensitive (exit 1 here: no key, not 2).
    sb.run("olm-store", ["--backend", "FILE", "get", "--public"], b"")
        .assert_error(1, "olm-store", "no key in");
    let mut c = sb.cmd("olm-store");
    c.args(["get", "--public"]).env("OLM_BACKEND", "File");
    run_with_stdin(c, b"").assert_error(1, "olm-store", "no key in");
    // Unknown backends are usage errors.
    sb.run("olm-store", ["--backend", "vault", "status"], b"")
        .assert_error(2, "olm-store", "unknown backend \"vault\"");
    let mut c = sb.cmd("olm-sign");
    c.args(["-X", "GET", "/x"]).env("OLM_BACKEND", "nope");
    run_with_stdin(c, b"").assert_error(2, "olm-sign", "OLM_BACKEND");
}

#[test]
fn key_env_and_k_still_win_over_the_store() {
    let sb = Sandbox::new();
    put(&sb, "k1");
    let k2 = sb.vector_key("k2");
    let args = ["-X", "GET", "/x", "--ts", "5"];
    let from_store = sb.run("olm-sign", args, b"").text();
    let mut c = sb.cmd("olm-sign");
    c.args(args).args(["-k".as_ref(), k2.as_os_str()]);
    let from_k = run_with_stdin(c, b"").text();
    let mut c = sb.cmd("olm-sign");
    c.args(args)
        .args(["--key-env", "CI_KEY"])
        .env("CI_KEY", vector_text("k2"));
    let from_env = run_with_stdin(c, b"").text();
    assert_ne!(from_store, from_k);
    assert_eq!(from_k, from_env);
    assert!(from_store.starts_with(&public_line("k1")["ssh-ed25519 ".len()..]));
}

#[test]
fn api_keys_put_get_and_bearer_headers() {
    let sb = Sandbox::new();
    let out = sb.run("olm-sign", ["--api-key"], b"");
    out.assert_error(2, "olm-sign", "no API key");
    let out = sb.run("olm-store", ["put", "--api-key"], b"  abc.DEF123\n");
    out.assert_code(0);
    let file = sb.home().join(".ollama").join("olm-api-key");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(fs::read_to_string(&file).unwrap(), "abc.DEF123\n");
    // Same again: no-op; another needs --force.
    sb.run("olm-store", ["put", "--api-key"], b"abc.DEF123")
        .assert_code(0);
    let out = sb.run("olm-store", ["put", "--api-key"], b"other");
    out.assert_error(1, "olm-store", "already holds another API key");
    assert!(
        out.stderr.contains(
            "keep a copy first if you may need it again (`olm-store get --api-key > backup`)"
        ),
        "{}",
        out.stderr
    );
    let out = sb.run("olm-sign", ["--api-key"], b"");
    out.assert_code(0);
    assert_eq!(out.text(), "Authorization: Bearer abc.DEF123\n");
    let out = sb.run(
        "olm-sign",
        [
            "--api-key",
            "-X",
            "get",
            "/api/tags?b=1",
            "--format",
            "curl",
        ],
        b"",
    );
    out.assert_code(0);
    assert_eq!(
        out.text(),
        "url = \"https://ollama.com/api/tags?b=1\"\nrequest = \"GET\"\nheader = \"Authorization: Bearer abc.DEF123\"\n"
    );
    // OLLAMA_API_KEY comes first.
    let mut c = sb.cmd("olm-sign");
    c.args([
        "--api-key",
        "-X",
        "POST",
        "http://127.0.0.1:9/api/me",
        "--format",
        "json",
    ])
    .env("OLLAMA_API_KEY", "from.env");
    let out = run_with_stdin(c, b"");
    out.assert_code(0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["authorization"], "Bearer from.env");
    assert_eq!(v["url"], "http://127.0.0.1:9/api/me");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["request_uri"], "/api/me");
    // curl and json need a request; token makes no sense.
    sb.run("olm-sign", ["--api-key", "--format", "curl"], b"")
        .assert_error(2, "olm-sign", "needs a request");
    sb.run("olm-sign", ["--api-key", "--format", "token"], b"")
        .assert_error(2, "olm-sign", "not a token");
    // The key never shows up in an error.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let out = sb.run("olm-sign", ["--api-key"], b"");
    out.assert_error(2, "olm-sign", "permissions 0644");
    assert!(!out.stderr.contains("abc.DEF123"));
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    sb.run("olm-store", ["delete", "--api-key"], b"")
        .assert_code(0);
    sb.run("olm-store", ["delete", "--api-key"], b"")
        .assert_error(1, "olm-store", "no API key");
}

/// Many `olm-store put --force` processes at once, each with its own key:
/// the lock file serialises them, so the `.pub` matches the key at the end.
#[test]
fn concurrent_processes_leave_a_matching_pub() {
    let sb = Sandbox::new();
    let keys: Vec<String> = (0..12)
        .map(|_| {
            PrivateKey::generate()
                .unwrap()
                .to_openssh()
                .unwrap()
                .to_string()
        })
        .collect();
    for _round in 0..3 {
        let children: Vec<_> = keys
            .iter()
            .map(|k| {
                let mut c = sb.cmd("olm-store");
                c.args(["put", "--force"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let mut child = c.spawn().unwrap();
                let mut stdin = child.stdin.take().unwrap();
                std::io::Write::write_all(&mut stdin, k.as_bytes()).unwrap();
                drop(stdin);
                child
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = sb.run("olm-store", ["status"], b"");
        out.assert_code(0);
        let stored = fs::read_to_string(sb.ollama_key()).unwrap();
        assert!(keys.contains(&stored), "the stored key is one of those put");
        let stored = PrivateKey::from_openssh(stored.as_bytes()).unwrap();
        assert_eq!(
            fs::read_to_string(pub_path(&sb)).unwrap().trim(),
            stored.public_key().to_line()
        );
    }
}

/// Writers killed at any moment (SIGKILL, no clean-up) never leave a
/// partial key: the key file is always one whole key that was put.
#[test]
fn killed_writers_never_leave_a_partial_key() {
    let sb = Sandbox::new();
    let keys: Vec<String> = (0..6)
        .map(|_| {
            PrivateKey::generate()
                .unwrap()
                .to_openssh()
                .unwrap()
                .to_string()
        })
        .collect();
    put_text(&sb, &keys[0]);
    for i in 0..30u64 {
        let k = &keys[i as usize % keys.len()];
        let mut c = sb.cmd("olm-store");
        c.args(["put", "--force"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, k.as_bytes()).unwrap();
        drop(stdin);
        // Kill at a different point of its run each time (0 to ~15 ms).
        std::thread::sleep(std::time::Duration::from_micros(i * 500));
        let _ = child.kill();
        let _ = child.wait();
        let stored = fs::read_to_string(sb.ollama_key()).expect("the key is never missing");
        assert!(
            keys.contains(&stored),
            "after kill {i} the key file is not a whole key that was put"
        );
        assert_eq!(mode(&sb.ollama_key()), 0o600);
    }
    // The next put of the stored key repairs a .pub left behind by a kill,
    // and removes the temporary files killed writers left (once they are
    // old enough not to belong to a live writer: aged here with touch).
    sb.sh("shopt -s nullglob; f=(\"$HOME\"/.ollama/.olm-??????); ((${#f[@]} == 0)) || touch -d '1 minute ago' \"${f[@]}\"")
        .assert_code(0);
    let stored = fs::read_to_string(sb.ollama_key()).unwrap();
    put_text(&sb, &stored);
    sb.run("olm-store", ["status"], b"").assert_code(0);
    let mut left: Vec<String> = fs::read_dir(sb.home().join(".ollama"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".olm-store.lock", "id_ed25519", "id_ed25519.pub"]);
}

fn put_text(sb: &Sandbox, key: &str) {
    sb.run("olm-store", ["put", "--force"], key.as_bytes())
        .assert_code(0);
}

/// Through a pseudo-terminal (`script`): `get` will not print a secret to
/// it, and `put` will not wait for a key typed into it.
#[test]
fn secrets_never_go_to_or_come_from_a_terminal() {
    if !olm_tests::have("script") {
        olm_tests::skipped!("SKIPPED: secrets_never_go_to_or_come_from_a_terminal: script (util-linux) not installed");
        return;
    }
    let sb = Sandbox::new();
    put(&sb, "k1");
    sb.sh("printf 'abc.def' | olm-store put --api-key")
        .assert_code(0);
    for (cmd, needle) in [
        (
            "olm-store get",
            "refusing to write a private key to a terminal",
        ),
        (
            "olm-store get --api-key",
            "refusing to write an API key to a terminal",
        ),
        (
            "olm-store put --force",
            "stdin is a terminal; pipe the private key in",
        ),
        (
            "olm-store put --api-key",
            "stdin is a terminal; pipe the API key in",
        ),
    ] {
        let out = sb.sh(&format!(
            "script -qec '{cmd}; echo \"rc=$?\"' /dev/null < /dev/null"
        ));
        let text = out.text();
        assert!(text.contains(needle), "{cmd}: {text}");
        assert!(text.contains("rc=2"), "{cmd}: {text}");
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains("abc.def"),
            "{cmd}: {text}"
        );
    }
    // The public line is fine on a terminal.
    let out = sb.sh("script -qec 'olm-store get --public' /dev/null < /dev/null");
    assert!(out.text().contains(&public_line("k1")), "{}", out.text());
}

#[test]
fn keyring_without_secret_service_says_so() {
    let sb = Sandbox::new();
    let mut c = sb.cmd("olm-store");
    c.args(["--backend", "keyring", "status"]).env(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/olm-test-bus",
    );
    let out = run_with_stdin(c, b"");
    out.assert_error(1, "olm-store", "the OS keyring is not available");
    assert!(out.stderr.contains("--backend file"), "{}", out.stderr);
    // The file backend does not care.
    let mut c = sb.cmd("olm-store");
    c.args(["put"]).env(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/olm-test-bus",
    );
    run_with_stdin(c, vector_text("k1").as_bytes()).assert_code(0);
    // remove_everywhere reports the keyring as an error value, and still
    // removes the key from the file (the library, in a child process whose
    // HOME and bus are the sandbox's).
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "remove_everywhere_without_secret_service",
        "--ignored",
        "--quiet",
    ])
    .env("HOME", sb.home())
    .env(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/olm-test-bus",
    );
    let out = run_with_stdin(c, b"");
    out.assert_code(0);
    assert!(out.text().contains("1 passed"), "{}", out.text());
    assert!(!sb.ollama_key().exists());
}

#[test]
#[ignore = "run by keyring_without_secret_service_says_so with a sandbox HOME"]
fn remove_everywhere_without_secret_service() {
    use libauth::store::{remove_everywhere, Backend, Removal};
    let k1 = PrivateKey::from_openssh(vector_text("k1").as_bytes()).unwrap();
    let r = remove_everywhere(&k1.public_key());
    assert_eq!(r[0], (Backend::File, Ok(Removal::Removed)));
    assert_eq!(r[1].0, Backend::Keyring);
    assert!(
        matches!(&r[1].1, Err(libauth::Error::NoSecretService { .. })),
        "{r:?}"
    );
}

/// The keyring backend against a real Secret Service: a fresh
/// gnome-keyring, unlocked, inside its own D-Bus session.
#[test]
fn keyring_round_trip_through_a_real_secret_service() {
    if !(olm_tests::have("gnome-keyring-daemon") && olm_tests::have("dbus-run-session")) {
        olm_tests::skipped!(
            "SKIPPED: keyring tests: gnome-keyring-daemon not installed (apt-get install gnome-keyring dbus libsecret-tools)"
        );
        return;
    }
    let sb = Sandbox::new();
    sb.vector_key("k1");
    sb.vector_key("k2");
    let runtime = sb.path("run");
    fs::create_dir(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let script = r#"
set -uo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null \
  || fail "gnome-keyring-daemon did not start"
B="--backend keyring"

olm-store $B status >/dev/null 2>&1; [ $? -eq 1 ] || fail "status of an empty keyring should exit 1"
out=$(olm-store $B put < k1) || fail "put"
[ "$out" = "$K1_PUB" ] || fail "put printed '$out'"
[ "$(olm-store $B get --public)" = "$K1_PUB" ] || fail "get --public"
olm-store $B get | cmp -s - k1 || fail "get is not the key put, byte for byte"
olm-store $B status > status.txt || fail "status of a stored key"
grep -q "^fingerprint: SHA256:" status.txt || fail "status has no fingerprint"
grep -q "^key: keyring service olm, user device-key" status.txt || fail "status location"
olm-store $B put < k1 2> same.err || fail "the same key again"
grep -q "nothing changed" same.err || fail "same key: no 'nothing changed' note"
olm-store $B put < k2 2> refused.err; [ $? -eq 1 ] || fail "a different key without --force"
grep -q "already holds another key" refused.err || fail "refusal message"
[ "$(olm-store $B get --public)" = "$K1_PUB" ] || fail "a refused put changed the key"
if command -v secret-tool >/dev/null; then
  secret-tool lookup service olm username device-key | grep -q "BEGIN OPENSSH PRIVATE KEY" \
    || fail "secret-tool does not see the entry"
else
  echo "SKIPPED: the secret-tool check (apt-get install libsecret-tools)" >&2
fi

# The tools read it: OLM_BACKEND and --backend.
t1=$(OLM_BACKEND=keyring olm-sign -X POST /api/me --ts 1700000000) || fail "olm-sign from keyring"
t2=$(olm-sign -k k1 -X POST /api/me --ts 1700000000) || fail "olm-sign -k"
[ "$t1" = "$t2" ] || fail "token from the keyring differs from -k"
olm-connect-url $B --name box </dev/null | grep -q "key=" || fail "olm-connect-url from keyring"

# Moving the file key into the keychain.
olm-store put < k2 >/dev/null 2>&1 || fail "file put"
olm-store get | olm-store $B put --force >/dev/null 2>&1 || fail "file to keyring pipeline"
[ "$(olm-store $B get --public)" = "$K2_PUB" ] || fail "moved key"

# API keys, separately from the device key.
printf 'abc.def\n' | olm-store $B put --api-key 2>/dev/null || fail "put --api-key"
[ "$(olm-store $B get --api-key)" = "abc.def" ] || fail "get --api-key"
[ "$(olm-sign $B --api-key)" = "Authorization: Bearer abc.def" ] || fail "olm-sign --api-key from keyring"
olm-store $B delete 2>/dev/null || fail "delete"
olm-store $B delete 2>/dev/null; [ $? -eq 1 ] || fail "second delete should exit 1"
[ "$(olm-store $B get --api-key)" = "abc.def" ] || fail "delete removed the API key"
olm-store $B delete --api-key 2>/dev/null || fail "delete --api-key"
olm-store $B get --api-key >/dev/null 2>&1; [ $? -eq 1 ] || fail "API key still there"

# A damaged entry (written behind olm's back) is reported, and not replaced without --force.
if command -v secret-tool >/dev/null; then
  printf 'garbage' | secret-tool store --label=damaged service olm username device-key \
    target default application rust-keyring || fail "secret-tool store"
  olm-store $B status > damaged.txt 2>&1; [ $? -eq 1 ] || fail "status of a damaged entry should exit 1"
  grep -q "damaged or unusable" damaged.txt || { cat damaged.txt >&2; fail "damaged entry not reported"; }
  olm-store $B put < k1 2>/dev/null; [ $? -eq 1 ] || fail "put over a damaged entry without --force"
  olm-store $B put --force < k1 >/dev/null 2>&1 || fail "put --force over a damaged entry"
  olm-store $B delete 2>/dev/null || fail "delete after repair"
fi

# remove_everywhere, through the library, in this session.
"$TEST_EXE" --exact remove_everywhere_in_a_keyring_session --ignored --quiet >lib.out 2>&1 \
  || { cat lib.out >&2; fail "remove_everywhere"; }
grep -q "1 passed" lib.out || { cat lib.out >&2; fail "the library test did not run"; }
echo ALL-OK
"#;
    let mut c = sb.cmd("timeout");
    c.args(["120", "dbus-run-session", "--", "bash", "-c", script])
        .env("K1_PUB", public_line("k1"))
        .env("K2_PUB", public_line("k2"))
        .env("TEST_EXE", std::env::current_exe().unwrap())
        .env("XDG_DATA_HOME", sb.home().join(".local/share"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("DBUS_SESSION_BUS_ADDRESS");
    let out = run_with_stdin(c, b"");
    assert_eq!(
        out.code,
        0,
        "stdout: {}\nstderr: {}",
        out.text(),
        out.stderr
    );
    assert!(out.text().contains("ALL-OK"), "{}", out.text());
}

/// Run by the test above inside its D-Bus session: `remove_everywhere`
/// removes the key from both backends, leaves API keys and other keys.
#[test]
#[ignore = "run by keyring_round_trip_through_a_real_secret_service inside dbus-run-session"]
fn remove_everywhere_in_a_keyring_session() {
    use libauth::store::{remove_everywhere, Backend, Removal, Store};
    let k1 = PrivateKey::from_openssh(vector_text("k1").as_bytes()).unwrap();
    let k2 = PrivateKey::from_openssh(vector_text("k2").as_bytes()).unwrap();
    let file = Store::open(Backend::File).unwrap();
    let ring = Store::open(Backend::Keyring).unwrap();
    file.put_key(&k1, true).unwrap();
    ring.put_key(&k1, true).unwrap();
    ring.put_api_key(&libauth::ApiKey::new("keep.me").unwrap(), true)
        .unwrap();
    let r = remove_everywhere(&k1.public_key());
    assert_eq!(r.len(), 2);
    assert!(
        r.iter().all(|(_, res)| res == &Ok(Removal::Removed)),
        "{r:?}"
    );
    assert!(file.get_key().unwrap().is_none());
    assert!(ring.get_key().unwrap().is_none());
    assert_eq!(ring.get_api_key().unwrap().unwrap().expose(), "keep.me");
    // Another key is left alone.
    ring.put_key(&k2, false).unwrap();
    let r = remove_everywhere(&k1.public_key());
    assert!(
        r.iter().all(|(_, res)| res == &Ok(Removal::NotHeld)),
        "{r:?}"
    );
    assert!(ring.get_key().unwrap().is_some());
    ring.delete_key().unwrap();
    ring.delete_api_key().unwrap();
}

/// A tool that signs with a key from a file does no keyring work: not one
/// socket is opened (the keyring backend is touched only when selected).
#[test]
fn file_backend_opens_no_socket() {
    if !olm_tests::have("strace") {
        olm_tests::skipped!("SKIPPED: file_backend_opens_no_socket: strace not installed");
        return;
    }
    let sb = Sandbox::new();
    put(&sb, "k1");
    let mut c = sb.cmd("strace");
    c.args(["-f", "-e", "trace=socket,connect", "-o"])
        .arg(sb.path("trace"))
        .arg(olm_tests::bin("olm-sign"))
        .args(["-X", "GET", "/x"]);
    run_with_stdin(c, b"").assert_code(0);
    let trace = fs::read_to_string(sb.path("trace")).unwrap();
    assert!(
        !trace.contains("socket(") && !trace.contains("connect("),
        "{trace}"
    );
    // The same trace does see the keyring backend's D-Bus connection attempt.
    let mut c = sb.cmd("strace");
    c.args(["-f", "-e", "trace=socket,connect", "-o"])
        .arg(sb.path("trace2"))
        .arg(olm_tests::bin("olm-sign"))
        .args(["--backend", "keyring", "-X", "GET", "/x"])
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/olm-test-bus",
        );
    run_with_stdin(c, b"").assert_code(1);
    let trace = fs::read_to_string(sb.path("trace2")).unwrap();
    assert!(trace.contains("connect("), "{trace}");
}

/// The file backend never follows the lock file through a link, and never
/// waits on a FIFO put where a key file belongs.
#[test]
fn links_and_fifos_in_the_folder_are_refused() {
    let sb = Sandbox::new();
    let dir = sb.home().join(".ollama");
    fs::create_dir(&dir).unwrap();
    let target = sb.path("made-through-the-link");
    std::os::unix::fs::symlink(&target, dir.join(".olm-store.lock")).unwrap();
    let out = sb.run("olm-store", ["put"], vector_text("k1").as_bytes());
    out.assert_error(2, "olm-store", "symbolic link");
    assert!(out.stderr.contains(".olm-store.lock"), "{}", out.stderr);
    assert!(!target.exists(), "put created the link's target");
    assert!(!sb.ollama_key().exists());
    fs::remove_file(dir.join(".olm-store.lock")).unwrap();

    put(&sb, "k1");
    for name in ["id_ed25519.pub", "id_ed25519"] {
        let path = dir.join(name);
        let saved = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        let ok = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(ok.success());
        // `timeout` turns a hang into exit 124 instead of a stuck test run.
        let out = sb.sh("timeout 60 olm-store status");
        out.assert_error(1, "olm-store", "not a regular file");
        assert!(out.text().contains("usable: "), "{}", out.text());
        let out = sb.sh("timeout 60 olm-store get --public");
        if name == "id_ed25519" {
            out.assert_error(2, "olm-store", "not a regular file");
        } else {
            out.assert_code(0);
        }
        fs::remove_file(&path).unwrap();
        fs::write(&path, saved).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode_for(name))).unwrap();
    }
    sb.run("olm-store", ["status"], b"").assert_code(0);
}

fn mode_for(name: &str) -> u32 {
    if name.ends_with(".pub") {
        0o644
    } else {
        0o600
    }
}

/// A key others may read: `status` and `get` refuse it with the same
/// words and the same `chmod 600` fix (status exits 1, get 2).
#[test]
fn status_and_get_agree_on_a_loose_key() {
    let sb = Sandbox::new();
    put(&sb, "k1");
    let key = sb.ollama_key();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let words = "permissions 0640 are too open: a private key must be readable by its owner only";
    let fix = format!("chmod 600 {:?}", key.display().to_string());
    let status = sb.run("olm-store", ["status"], b"");
    status.assert_error(1, "olm-store", words);
    assert!(status.text().contains("usable: no"), "{}", status.text());
    assert!(
        status.stderr.contains(&format!("hint: {fix}")),
        "{}",
        status.stderr
    );
    let get = sb.run("olm-store", ["get", "--public"], b"");
    get.assert_error(2, "olm-store", words);
    assert!(
        get.stderr.contains(&format!("hint: {fix}")),
        "{}",
        get.stderr
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let status = sb.run("olm-store", ["status"], b"");
    status.assert_code(0);
    assert!(status.text().contains("usable: yes"), "{}", status.text());
}

/// Root running olm on a service user's folder: a link there to a file of
/// another owner is not followed and nothing of it is shown.
#[test]
fn links_to_another_owners_file_are_not_followed() {
    let sb = Sandbox::new();
    if fs::metadata(sb.home()).unwrap().uid() != 0 {
        olm_tests::skipped!(
            "SKIPPED links_to_another_owners_file_are_not_followed: needs root (chown)"
        );
        return;
    }
    put(&sb, "k1");
    let secret = sb.path("shadow");
    fs::write(&secret, "root:$6$secret-hash:19000::::::\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let pub_file = pub_path(&sb);
    fs::remove_file(&pub_file).unwrap();
    std::os::unix::fs::symlink(&secret, &pub_file).unwrap();
    std::os::unix::fs::lchown(&pub_file, Some(65534), Some(65534)).unwrap();
    let out = sb.run("olm-store", ["status"], b"");
    out.assert_error(1, "olm-store", "another owner");
    let all = format!("{}{}", out.text(), out.stderr);
    assert!(
        !all.contains("secret-hash") && !all.contains("root:"),
        "{all}"
    );
    // The key itself through such a link: refused by get.
    fs::remove_file(sb.ollama_key()).unwrap();
    fs::copy(vectors_dir().join("keys").join("k2"), &secret).unwrap();
    std::os::unix::fs::symlink(&secret, sb.ollama_key()).unwrap();
    std::os::unix::fs::lchown(sb.ollama_key(), Some(65534), Some(65534)).unwrap();
    sb.run("olm-store", ["get", "--public"], b"")
        .assert_error(2, "olm-store", "another owner");
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        vector_text("k2"),
        "the file the link leads to is untouched"
    );
}
