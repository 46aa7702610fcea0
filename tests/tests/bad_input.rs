//! The bad-input matrix: every way a key, a file or stdin can be wrong, fed
//! to every tool that reads it. Each row must end with the status CLI.md
//! gives (`2` for bad input), one `TOOL: error:` line naming the file or
//! value (plus an optional `hint:` line), no panic, and no byte of a key on
//! stderr.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use olm_tests::{vectors_dir, Out, Sandbox};

/// Asserts the failure shape: status, one error line from `tool`, at most a
/// `hint:` line besides, and every needle somewhere on stderr.
#[track_caller]
fn assert_refused(out: &Out, code: i32, tool: &str, needles: &[&str], row: &str) {
    assert_eq!(
        out.code,
        code,
        "{row}: exit code; stderr: {}; stdout: {}",
        out.stderr,
        out.text()
    );
    assert!(!out.stderr.contains("panicked"), "{row}: {}", out.stderr);
    assert!(
        !out.stderr.contains("RUST_BACKTRACE"),
        "{row}: {}",
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "{row}: one error line and at most a hint: {}",
        out.stderr
    );
    assert!(
        lines[0].starts_with(&format!("{tool}: error: ")),
        "{row}: {}",
        out.stderr
    );
    if let Some(second) = lines.get(1) {
        assert!(second.starts_with("hint: "), "{row}: {}", out.stderr);
    }
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "{row}: stderr lacks {needle:?}: {}",
            out.stderr
        );
    }
    assert!(out.stdout.is_empty(), "{row}: stdout: {}", out.text());
}

fn write_key_file(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).expect("write fixture");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn k1_text() -> String {
    fs::read_to_string(vectors_dir().join("keys").join("k1")).expect("k1")
}

/// Deterministic bytes that are no key at all.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Whether ssh-keygen is here; says loudly when it is not.
fn have_ssh_keygen(test: &str) -> bool {
    let ok = Command::new("ssh-keygen")
        .arg("-?")
        .output()
        .map(|_| true)
        .unwrap_or(false);
    if !ok {
        olm_tests::skipped!(
            "SKIPPED {test}: ssh-keygen is not installed (apt-get install openssh-client)"
        );
    }
    ok
}

fn ssh_keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-C", ""])
        .args(args)
        .arg("-f")
        .arg(&path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen {args:?}");
    path
}

/// A bad key file: its name, the file, and what stderr must say.
struct BadKey {
    row: &'static str,
    path: PathBuf,
    needles: Vec<&'static str>,
}

fn bad_key_files(sb: &Sandbox) -> Vec<BadKey> {
    let k1 = k1_text();
    let mut rows = Vec::new();
    let mut add = |row: &'static str, bytes: Option<&[u8]>, mode: u32, needles: &[&'static str]| {
        let path = sb.path(&format!("bad-{row}"));
        if let Some(bytes) = bytes {
            write_key_file(&path, bytes, mode);
        }
        rows.push(BadKey {
            row,
            path,
            needles: needles.to_vec(),
        });
    };
    add("empty", Some(b""), 0o600, &["empty", "olm-keygen"]);
    add(
        "truncated",
        Some(&k1.as_bytes()[..k1.len() / 2]),
        0o600,
        &["damaged or truncated"],
    );
    add(
        "random",
        Some(&random_bytes(400, 7)),
        0o600,
        &["not an OpenSSH private key"],
    );
    add(
        "public-key",
        Some(&fs::read(vectors_dir().join("keys").join("k1.pub")).expect("k1.pub")[..]),
        0o600,
        &["this is a public key"],
    );
    add(
        "pem-rsa",
        Some(b"-----BEGIN RSA PRIVATE KEY-----\nMIIEow==\n-----END RSA PRIVATE KEY-----\n"),
        0o600,
        &["RSA keys are not supported"],
    );
    add(
        "too-large",
        Some(&vec![b'A'; 100 * 1024]),
        0o600,
        &["larger than the limit"],
    );
    add(
        "loose-0644",
        Some(k1.as_bytes()),
        0o644,
        &["0644", "chmod 600"],
    );
    add(
        "loose-0640",
        Some(k1.as_bytes()),
        0o640,
        &["0640", "chmod 600"],
    );
    add("missing", None, 0, &["no such file", "olm-keygen -o"]);
    let dir = sb.path("bad-directory");
    fs::create_dir(&dir).expect("mkdir");
    rows.push(BadKey {
        row: "directory",
        path: dir,
        needles: vec!["directory"],
    });
    if have_ssh_keygen("bad_input: RSA, ECDSA and passphrase rows") {
        let gen = sb.path("gen");
        fs::create_dir(&gen).expect("mkdir gen");
        for (row, args, needle) in [
            (
                "rsa",
                &["-t", "rsa", "-b", "2048", "-N", ""][..],
                "RSA keys are not supported",
            ),
            ("ecdsa", &["-t", "ecdsa", "-N", ""][..], "ECDSA keys"),
            (
                "passphrase",
                &["-t", "ed25519", "-N", "correct horse"][..],
                "passphrase",
            ),
        ] {
            let path = ssh_keygen(&gen, row, args);
            rows.push(BadKey {
                row,
                path,
                needles: vec![needle],
            });
        }
    }
    rows
}

/// One way a tool takes a key file: the tool, the arguments before the
/// file, and stdin.
type KeyUser = (&'static str, Vec<&'static str>, &'static [u8]);

/// Every way a tool takes a key file.
fn key_file_users() -> Vec<KeyUser> {
    vec![
        ("olm-keygen", vec!["-y", "-k"], &b""[..]),
        ("olm-sign", vec!["-k"], b"POST,/api/me?ts=1"),
        ("olm-sign", vec!["--lines", "-k"], b"a\nb\n"),
        ("olm-sign", vec!["-X", "GET", "/api/tags", "-k"], b""),
        (
            "olm-sign",
            vec!["--registry", r#"Bearer realm="https://r.example/t""#, "-k"],
            b"",
        ),
        ("olm-connect-url", vec!["--name", "box", "-k"], b""),
        ("olm-whoami", vec!["-k"], b""),
        ("olm-revoke", vec!["-k"], b""),
        ("olm-revoke", vec!["--local-only", "-k"], b""),
    ]
    .into_iter()
    .filter(|(tool, _, _)| olm_tests::bin_dir().join(tool).exists())
    .collect()
}

#[test]
fn every_bad_key_file_in_every_tool() {
    let sb = Sandbox::new();
    let rows = bad_key_files(&sb);
    for bad in &rows {
        let shown = bad.path.file_name().unwrap().to_string_lossy().into_owned();
        for (tool, before, stdin) in key_file_users() {
            let mut args: Vec<&std::ffi::OsStr> = before.iter().map(|a| a.as_ref()).collect();
            args.push(bad.path.as_os_str());
            // Nothing may reach the network: a bad key stops a tool first,
            // and the base URL is a port where nothing listens.
            let mut c = sb.cmd(tool);
            c.args(&args)
                .env("OLLAMA_CLOUD_BASE_URL", "http://127.0.0.1:9")
                .env("OLLAMA_HOST", "127.0.0.1:9");
            let out = olm_tests::run_with_stdin(c, stdin);
            let row = format!("{} / {tool} {before:?}", bad.row);
            let mut needles = vec![shown.as_str()];
            needles.extend(bad.needles.iter().copied());
            assert_refused(&out, 2, tool, &needles, &row);
        }
    }
}

#[test]
fn bad_keys_on_stdin_and_in_the_environment() {
    let sb = Sandbox::new();
    let k1 = k1_text();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("empty", b"".to_vec(), "empty"),
        ("whitespace", b" \n\t\n".to_vec(), "empty"),
        (
            "truncated",
            k1.as_bytes()[..k1.len() / 3].to_vec(),
            "damaged or truncated",
        ),
        ("random", random_bytes(300, 11), "not"),
        (
            "pkcs8",
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n".to_vec(),
            "PKCS#8",
        ),
    ];
    for (row, bytes, needle) in &cases {
        // olm-keygen -y reads the key on stdin.
        let out = sb.run("olm-keygen", ["-y"], bytes);
        assert_refused(&out, 2, "olm-keygen", &["stdin", needle], row);
        // --key-env: the variable is named, its value never shown.
        if let Ok(text) = std::str::from_utf8(bytes) {
            if !text.contains('\0') {
                let mut c = sb.cmd("olm-sign");
                c.args(["--key-env", "OLM_TEST_KEY"])
                    .env("OLM_TEST_KEY", text);
                let out = olm_tests::run_with_stdin(c, b"x");
                assert_refused(
                    &out,
                    2,
                    "olm-sign",
                    &["environment variable OLM_TEST_KEY", needle],
                    row,
                );
            }
        }
    }
    let out = sb.run("olm-sign", ["--key-env", "OLM_UNSET_VARIABLE"], b"x");
    assert_refused(
        &out,
        2,
        "olm-sign",
        &["OLM_UNSET_VARIABLE", "is not set"],
        "unset --key-env",
    );
}

#[test]
fn no_key_at_all() {
    let sb = Sandbox::new();
    // The default key is missing: the message says where olm looked.
    let out = sb.run("olm-sign", Vec::<&str>::new(), b"x");
    assert_refused(
        &out,
        2,
        "olm-sign",
        &[".ollama/id_ed25519", "olm-keygen"],
        "missing default key",
    );
    let mut c = sb.cmd("olm-sign");
    c.env_remove("HOME");
    let out = olm_tests::run_with_stdin(c, b"x");
    assert_refused(&out, 2, "olm-sign", &["HOME is not set"], "no HOME");
}

#[test]
fn garbage_on_stdin_to_every_tool() {
    let sb = Sandbox::new();
    let key = sb.vector_key("k1");
    let key = key.to_str().unwrap();
    let garbage = random_bytes(5000, 3);

    // Tools that read a key or a public key line from stdin refuse garbage.
    let out = sb.run("olm-keygen", ["-y"], &garbage);
    assert_refused(&out, 2, "olm-keygen", &["stdin"], "keygen -y garbage");
    let out = sb.run("olm-connect-url", ["--name", "box"], &garbage);
    assert_refused(
        &out,
        2,
        "olm-connect-url",
        &["stdin", "UTF-8"],
        "connect-url binary",
    );
    let out = sb.run("olm-connect-url", ["--name", "box"], b"hello world\n");
    assert_refused(
        &out,
        2,
        "olm-connect-url",
        &["stdin", "ssh-ed25519"],
        "connect-url text",
    );
    let out = sb.run(
        "olm-connect-url",
        ["--name", "box"],
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n",
    );
    assert_refused(
        &out,
        2,
        "olm-connect-url",
        &["stdin"],
        "connect-url damaged key",
    );

    // olm-sign signs any bytes: garbage is a valid challenge, one token out.
    let out = sb.run("olm-sign", ["-k", key], &garbage);
    out.assert_code(0);
    let token = libauth::Token::parse(out.text().trim()).expect("a token");
    token.verify(&garbage).expect("it signs the exact bytes");
    let out = sb.run("olm-sign", ["--lines", "-k", key], &garbage);
    out.assert_code(0);
    assert_eq!(
        out.lines().len(),
        garbage.split(|&b| b == b'\n').count() - usize::from(garbage.last() == Some(&b'\n'))
    );
    // olm-keygen without -y does not read stdin at all.
    let out = sb.run("olm-keygen", Vec::<&str>::new(), &garbage);
    out.assert_code(0);
    assert!(out
        .text()
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
}

#[test]
fn bad_values_on_the_command_line() {
    let sb = Sandbox::new();
    let key = sb.vector_key("k1");
    let key = key.to_str().unwrap();
    let pub_line = fs::read_to_string(vectors_dir().join("keys").join("k1.pub")).unwrap();
    let rows: &[(&str, &[&str], &[&str])] = &[
        (
            "olm-sign",
            &["-X", "GET", "api/tags"],
            &["must start with /"],
        ),
        ("olm-sign", &["-X", "G T", "/x"], &["not an HTTP method"]),
        ("olm-sign", &["-X", "GET", "/x?a=%zz"], &["%-escape"]),
        (
            "olm-sign",
            &["-X", "GET", "ftp://h/x"],
            &["the URL", "scheme"],
        ),
        (
            "olm-sign",
            &["-X", "GET", "/x", "--base", "http://example.com"],
            &["--base", "loopback"],
        ),
        (
            "olm-sign",
            &["--registry", "Bearer service=\"x\""],
            &["--registry", "realm"],
        ),
        (
            "olm-sign",
            &["--registry", "Bearer realm=\"ftp://x/\""],
            &["--registry", "realm"],
        ),
        ("olm-sign", &["--format", "curl"], &["--format curl"]),
        ("olm-sign", &["--lines", "--format", "json"], &["--lines"]),
        ("olm-connect-url", &["--name", ""], &["--name"]),
        (
            "olm-connect-url",
            &["--base", "ollama.com"],
            &["--base", "scheme"],
        ),
        (
            "olm-whoami",
            &["--base", "http://example.com"],
            &["--base", "loopback"],
        ),
        (
            "olm-revoke",
            &["--base", "https://u@ollama.com"],
            &["--base", "user info"],
        ),
    ];
    for (tool, args, needles) in rows {
        if !olm_tests::bin_dir().join(tool).exists() {
            olm_tests::skipped!("SKIPPED {tool} {args:?}: not built here");
            continue;
        }
        let mut all: Vec<&str> = args.to_vec();
        if ["olm-sign", "olm-whoami", "olm-revoke"].contains(tool) {
            all.extend(["-k", key]);
        }
        // olm-connect-url reads a public key line on stdin.
        let stdin = if *tool == "olm-connect-url" {
            pub_line.as_bytes()
        } else {
            b"x"
        };
        let out = sb.run(tool, &all, stdin);
        assert_refused(&out, 2, tool, needles, &format!("{tool} {args:?}"));
    }
    // Unknown flags and bad values are usage errors (clap's message, exit 2).
    for (tool, args) in [
        ("olm-sign", &["--no-such-flag"][..]),
        ("olm-sign", &["--ts", "yesterday", "-X", "GET", "/"][..]),
        ("olm-sign", &["--format", "xml"][..]),
        ("olm-keygen", &["-o"][..]),
        ("olm-connect-url", &["--qr=maybe"][..]),
        ("olm-keygen", &["--generate", "troff"][..]),
        ("olm-whoami", &["--timeout", "soon"][..]),
        ("olm-revoke", &["--local-only", "--server"][..]),
        ("olm-verify", &["--max-skew", "-1"][..]),
        ("olm-store", &["put", "--no-such-flag"][..]),
    ] {
        if !olm_tests::bin_dir().join(tool).exists() {
            olm_tests::skipped!("SKIPPED {tool} {args:?}: not built here");
            continue;
        }
        let out = sb.run(tool, args, b"");
        assert_eq!(out.code, 2, "{tool} {args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with(&format!("{tool}: error:")),
            "{tool} {args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"));
    }
}

#[test]
fn oversized_input_is_refused_with_the_limit() {
    let sb = Sandbox::new();
    let key = sb.vector_key("k1");
    let key = key.to_str().unwrap();
    // A 3 MB challenge (a token or line that size is no real input).
    let big = vec![b'A'; 3 * 1024 * 1024];
    let out = sb.run("olm-sign", ["-k", key], &big);
    assert_refused(
        &out,
        2,
        "olm-sign",
        &["stdin", "limit of 1048576 bytes"],
        "3 MB stdin",
    );
    let out = sb.run("olm-sign", ["--lines", "-k", key], &big);
    assert_refused(
        &out,
        2,
        "olm-sign",
        &["stdin line 1", "limit of 1048576 bytes"],
        "3 MB line",
    );
    // A long line after good ones: the good ones were signed, the error
    // names the line.
    let mut input = b"a\nb\n".to_vec();
    input.extend_from_slice(&big);
    let out = sb.run("olm-sign", ["--lines", "-k", key], &input);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("stdin line 3"), "{}", out.stderr);
    assert_eq!(out.lines().len(), 2);
    // A key on stdin larger than any key file.
    let out = sb.run("olm-keygen", ["-y"], &big);
    assert_refused(&out, 2, "olm-keygen", &["stdin", "limit"], "3 MB key");
    let out = sb.run("olm-connect-url", Vec::<&str>::new(), &big);
    assert_refused(
        &out,
        2,
        "olm-connect-url",
        &["stdin", "limit"],
        "3 MB public key",
    );
}

/// The base64 lines of an OpenSSH key file.
fn body_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn armor(body: &[u8]) -> String {
    let b64 = STANDARD.encode(body);
    let mut out = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(70) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    out
}

/// Damaged copies of a real key, each failing at another stage of parsing.
fn damaged_keys(good: &str) -> Vec<(&'static str, String)> {
    let body = STANDARD.decode(body_lines(good).concat()).expect("base64");
    let mut out = Vec::new();
    // A wrong character in the middle of the base64.
    let mut lines = body_lines(good);
    let mid = lines.len() / 2;
    lines[mid].replace_range(10..11, "!");
    out.push((
        "bad base64",
        format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    ));
    // Cut off after two thirds, END line kept.
    out.push(("truncated binary", armor(&body[..body.len() * 2 / 3])));
    // Cut off without an END line.
    out.push(("no END line", good[..good.len() - 40].to_string()));
    // The check integers differ (the first byte of the private section).
    // Layout: magic (15), cipher (8), kdf (8), kdf options (4), count (4),
    // public key (4 + 51), private section length (4), then the check
    // integers at 98 and the 64-byte secret at 161.
    let private_at = 98;
    let mut checks = body.clone();
    for b in &mut checks[private_at..private_at + 4] {
        *b ^= 0x55;
    }
    out.push(("check integers", armor(&checks)));
    // The cipher name's length swallows the key: the label error path.
    let mut label = body.clone();
    label[15..19].copy_from_slice(&200u32.to_be_bytes());
    out.push(("cipher label", armor(&label)));
    // A cipher name that is text from the key itself: ssh-key's own
    // message would quote it.
    let quoted = body_lines(good)[1][..40].to_string();
    let mut foreign = body[..15].to_vec();
    foreign.extend_from_slice(&(quoted.len() as u32).to_be_bytes());
    foreign.extend_from_slice(quoted.as_bytes());
    foreign.extend_from_slice(&body[23..]);
    out.push(("cipher name from the key", armor(&foreign)));
    // The secret half flipped, public half kept.
    let mut halves = body.clone();
    let secret_at = 161;
    for b in &mut halves[secret_at..secret_at + 8] {
        *b ^= 0xff;
    }
    out.push(("mismatched halves", armor(&halves)));
    // Trailing junk after the key inside the armor.
    let mut trailing = body;
    trailing.extend_from_slice(&[0x41; 40]);
    out.push(("trailing bytes", armor(&trailing)));
    out
}

/// Every 8-character window of `lines`.
fn windows(lines: &[String]) -> Vec<String> {
    let mut w = Vec::new();
    for line in lines {
        let chars: Vec<char> = line.chars().collect();
        for win in chars.windows(8) {
            w.push(win.iter().collect());
        }
    }
    w
}

#[test]
fn key_content_never_reaches_stderr() {
    let sb = Sandbox::new();
    // A key of our own with a long comment that would stand out.
    let made = sb.run(
        "olm-keygen",
        ["-C", "comment-that-must-not-leak-anywhere"],
        b"",
    );
    made.assert_code(0);
    let good = made.text();
    let secret_windows = windows(&body_lines(&good));
    for (row, damaged) in damaged_keys(&good) {
        let mut leak_windows = secret_windows.clone();
        leak_windows.extend(windows(&body_lines(&damaged)));
        let file = sb.path("damaged");
        write_key_file(&file, damaged.as_bytes(), 0o600);
        let loose = sb.path("loose");
        write_key_file(&loose, damaged.as_bytes(), 0o644);
        let f = file.to_str().unwrap();
        let l = loose.to_str().unwrap();
        let mut outs: Vec<(String, Out)> = vec![
            (
                "keygen -y -k".into(),
                sb.run("olm-keygen", ["-y", "-k", f], b""),
            ),
            (
                "keygen -y stdin".into(),
                sb.run("olm-keygen", ["-y"], damaged.as_bytes()),
            ),
            ("sign -k".into(), sb.run("olm-sign", ["-k", f], b"x")),
            (
                "sign --lines -k".into(),
                sb.run("olm-sign", ["--lines", "-k", f], b"x\n"),
            ),
            ("sign loose".into(), sb.run("olm-sign", ["-k", l], b"x")),
            (
                "connect-url -k".into(),
                sb.run("olm-connect-url", ["-k", f], b""),
            ),
            (
                "connect-url stdin".into(),
                sb.run("olm-connect-url", ["--name", "b"], damaged.as_bytes()),
            ),
        ];
        let mut c = sb.cmd("olm-sign");
        c.args(["--key-env", "OLM_TEST_KEY"])
            .env("OLM_TEST_KEY", &damaged);
        outs.push(("sign --key-env".into(), olm_tests::run_with_stdin(c, b"x")));
        for (how, out) in outs {
            let label = format!("{row} / {how}");
            assert_eq!(out.code, 2, "{label}: {}", out.stderr);
            assert!(!out.stderr.contains("panicked"), "{label}: {}", out.stderr);
            assert!(
                !out.stderr.contains("comment-that-must-not"),
                "{label}: {}",
                out.stderr
            );
            for w in &leak_windows {
                assert!(
                    !out.stderr.contains(w.as_str()),
                    "{label}: stderr holds key text {w:?}: {}",
                    out.stderr
                );
            }
        }
    }
}

#[test]
fn every_tool_with_garbage_and_no_arguments() {
    // Whatever tools exist (tools/olm-*): no flags, garbage on stdin, no
    // key, and a base URL where nothing listens. Nothing may panic, and a
    // failure is the one-line shape with status 1 or 2.
    let sb = Sandbox::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tools");
    let mut tools: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("olm-"))
        .collect();
    tools.sort();
    for input in [random_bytes(3000, 5), b"\n\n\n".to_vec(), Vec::new()] {
        for tool in &tools {
            let mut c = sb.cmd(tool);
            c.env("OLLAMA_CLOUD_BASE_URL", "http://127.0.0.1:9")
                .env("OLLAMA_HOST", "127.0.0.1:9");
            let out = olm_tests::run_with_stdin(c, &input);
            assert!(!out.stderr.contains("panicked"), "{tool}: {}", out.stderr);
            assert!(
                matches!(out.code, 0..=2),
                "{tool}: exit {}: {}",
                out.code,
                out.stderr
            );
            if out.code != 0 {
                // One error line, or (a missing subcommand) the usage.
                assert!(
                    out.stderr.starts_with(&format!("{tool}: "))
                        || out.stderr.contains(&format!("Usage: {tool}")),
                    "{tool}: {}",
                    out.stderr
                );
            }
        }
    }
}

/// Whether a tool exists in this build (tools from other branches).
fn have_tool(name: &str) -> bool {
    let ok = olm_tests::bin_dir().join(name).exists();
    if !ok {
        olm_tests::skipped!("SKIPPED rows for {name}: not built here");
    }
    ok
}

#[test]
fn olm_store_refuses_bad_keys_and_keeps_the_old_one() {
    if !have_tool("olm-store") {
        return;
    }
    let sb = Sandbox::new();
    let k1 = k1_text();
    let out = sb.run("olm-store", ["put"], k1.as_bytes());
    out.assert_code(0);
    let stored = fs::read(sb.ollama_key()).unwrap();
    let rows: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "empty"),
        ("random", random_bytes(500, 9), "not an OpenSSH private key"),
        (
            "truncated",
            k1.as_bytes()[..k1.len() / 2].to_vec(),
            "damaged or truncated",
        ),
        (
            "public key",
            fs::read(vectors_dir().join("keys").join("k1.pub")).unwrap(),
            "public key",
        ),
        (
            "pem rsa",
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIEow==\n-----END RSA PRIVATE KEY-----\n".to_vec(),
            "RSA",
        ),
        ("3 MB", vec![b'A'; 3 * 1024 * 1024], "limit"),
    ];
    for (row, input, needle) in rows {
        for args in [&["put"][..], &["put", "--force"][..]] {
            let out = sb.run("olm-store", args, &input);
            assert_refused(&out, 2, "olm-store", &["stdin", needle], row);
            assert_eq!(
                fs::read(sb.ollama_key()).unwrap(),
                stored,
                "{row}: key changed"
            );
        }
    }
    let out = sb.run("olm-store", ["--backend", "bogus", "status"], b"");
    assert_refused(&out, 2, "olm-store", &["bogus"], "unknown backend");
    // A stored key others can read: every reader names it and says chmod.
    fs::set_permissions(sb.ollama_key(), fs::Permissions::from_mode(0o644)).unwrap();
    for (tool, args) in [
        ("olm-store", &["get", "--public"][..]),
        ("olm-sign", &[][..]),
        ("olm-keygen", &["-y", "-k"][..]),
    ] {
        let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        if tool == "olm-keygen" {
            all.push(sb.ollama_key().into());
        }
        let out = sb.run(tool, &all, b"x");
        assert_refused(
            &out,
            2,
            tool,
            &["id_ed25519", "0644", "chmod 600"],
            "0644 store",
        );
    }
}

#[test]
fn olm_verify_bad_tokens_lists_and_sizes() {
    if !have_tool("olm-verify") {
        return;
    }
    let sb = Sandbox::new();
    let key = sb.vector_key("k1");
    let token = sb.run(
        "olm-sign",
        [std::ffi::OsStr::new("-k"), key.as_os_str()],
        b"x",
    );
    token.assert_code(0);
    let token = token.text().trim().to_string();
    // CLI.md: a token that does not verify (malformed or not) is exit 1.
    let long = "A".repeat(100_000);
    let refused: Vec<(&str, Vec<&str>, &[u8], &str)> = vec![
        (
            "garbage token",
            vec!["--token", "garbage"],
            b"x",
            "malformed token",
        ),
        ("empty token", vec!["--token", ""], b"x", "malformed token"),
        (
            "100 KB token",
            vec!["--token", &long],
            b"x",
            "malformed token",
        ),
        (
            "garbage header",
            vec!["--header", "Authorization: Bearer !!"],
            b"x",
            "malformed token",
        ),
        (
            "other bytes",
            vec!["--token", &token],
            b"y",
            "does not match",
        ),
        (
            "garbage challenge",
            vec!["--token", &token],
            b"\xff\x00garbage",
            "does not match",
        ),
    ];
    for (row, args, stdin, needle) in refused {
        let out = sb.run("olm-verify", &args, stdin);
        assert_refused(&out, 1, "olm-verify", &[needle], row);
        assert!(out.stderr.len() < 400, "{row}: {}", out.stderr);
    }
    // Bad authorized_keys files and requests are bad input: exit 2.
    let binary = sb.path("ak-binary");
    fs::write(&binary, random_bytes(300, 13)).unwrap();
    let huge = sb.path("ak-huge");
    fs::write(&huge, vec![b'#'; 5 * 1024 * 1024]).unwrap();
    let dir = sb.path("ak-dir");
    fs::create_dir(&dir).unwrap();
    let missing = sb.path("ak-missing");
    for (row, file, needle) in [
        ("binary list", &binary, "UTF-8"),
        ("huge list", &huge, "limit"),
        ("directory list", &dir, "directory"),
        ("missing list", &missing, "no such"),
    ] {
        let f = file.to_str().unwrap();
        let out = sb.run(
            "olm-verify",
            ["--token", &token, "--authorized-keys", f],
            b"x",
        );
        let name = file.file_name().unwrap().to_str().unwrap();
        assert_refused(&out, 2, "olm-verify", &[name, needle], row);
    }
    for (row, args, needle) in [
        ("no ts", vec!["-X", "GET", "/api/tags"], "ts"),
        ("bad method", vec!["-X", "G T", "/api/tags?ts=1"], "method"),
        ("relative path", vec!["-X", "GET", "api?ts=1"], "/"),
    ] {
        let mut all = vec!["--token", token.as_str()];
        all.extend(args);
        let out = sb.run("olm-verify", &all, b"");
        assert_refused(&out, 2, "olm-verify", &[needle], row);
    }
    // A 3 MB token on a --lines line: a `bad` verdict for that line, the
    // next line still verified, status 1.
    let mut input = vec![b'A'; 3 * 1024 * 1024];
    input.extend_from_slice(format!("\t\n{token}\tx\n").as_bytes());
    let out = sb.run("olm-verify", ["--lines"], &input);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("bad ") && lines[0].contains("longer than"),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("ok "), "{lines:?}");
}
