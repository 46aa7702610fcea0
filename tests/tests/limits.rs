//! Bounded memory and quiet broken pipes: a gigabyte on stdin is refused
//! at the documented limit without being held in memory, and a reader that
//! goes away (`| head -1`) ends a tool quietly with status 0.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use olm_tests::Sandbox;

/// The peak memory the issue allows a tool, in KiB.
const PEAK_LIMIT_KIB: u64 = 128 * 1024;

fn have_gnu_time(test: &str) -> bool {
    let ok = Path::new("/usr/bin/time").exists();
    if !ok {
        olm_tests::skipped!("SKIPPED {test}: /usr/bin/time is missing (apt-get install time)");
    }
    ok
}

/// Runs `tool args` with 1 GiB from `generator` on stdin under
/// `/usr/bin/time`; returns (status, stderr, peak RSS in KiB).
fn run_with_gigabyte(sb: &Sandbox, generator: &str, tool_args: &str) -> (i32, String, u64) {
    let script = format!(
        "{generator} | /usr/bin/time -f %M -o peak {tool_args} 2>err >/dev/null; \
         echo \"${{PIPESTATUS[1]}}\"; cat err; echo; cat peak"
    );
    // No pipefail: the generator dies of SIGPIPE once the tool stops reading.
    let mut cmd = sb.cmd("bash");
    cmd.arg("-c").arg(script);
    let out = olm_tests::run_with_stdin(cmd, b"");
    let text = out.text();
    let mut lines = text.lines();
    let code: i32 = lines.next().unwrap().trim().parse().expect("status");
    let rest: Vec<&str> = lines.collect();
    let peak: u64 = rest
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak from /usr/bin/time: {text} {}", out.stderr));
    let stderr = rest[..rest.len() - 1].join("\n");
    (code, stderr, peak)
}

#[test]
fn a_gigabyte_on_stdin_stays_bounded() {
    if !have_gnu_time("a_gigabyte_on_stdin_stays_bounded") {
        return;
    }
    let sb = Sandbox::new();
    let key = sb.vector_key("k1");
    let k = key.to_str().unwrap();
    let zeros = "head -c 1G /dev/zero";
    let mut cases = vec![
        (format!("olm-sign -k {k}"), 2, "limit of 1048576 bytes"),
        (format!("olm-sign --lines -k {k}"), 2, "stdin line 1"),
        ("olm-keygen -y".to_string(), 2, "limit of 65536 bytes"),
        ("olm-connect-url".to_string(), 2, "limit of 65536 bytes"),
    ];
    let tool_exists = |name: &str| olm_tests::bin_dir().join(name).exists();
    if tool_exists("olm-verify") {
        let token = sb.run("olm-sign", ["-k", k], b"x").text();
        cases.push((
            format!("olm-verify --token {}", token.trim()),
            2,
            "limit of 1048576 bytes",
        ));
        // One 1 GiB line is a `bad` verdict (skipped, not held) and exit 1.
        cases.push(("olm-verify --lines".to_string(), 1, "did not verify"));
    } else {
        olm_tests::skipped!("SKIPPED olm-verify rows: not built here");
    }
    if tool_exists("olm-store") {
        cases.push(("olm-store put".to_string(), 2, "limit of 65536 bytes"));
    }
    for (tool, want, needle) in cases {
        let (code, stderr, peak) = run_with_gigabyte(&sb, zeros, &tool);
        assert_eq!(code, want, "{tool}: {stderr}");
        assert!(stderr.contains(needle), "{tool}: {stderr}");
        assert!(
            peak < PEAK_LIMIT_KIB,
            "{tool}: peak {peak} KiB is over {PEAK_LIMIT_KIB} KiB"
        );
        eprintln!("{tool} with 1 GiB on stdin: exit {code}, peak {peak} KiB");
    }
}

#[test]
fn many_lines_stream_in_bounded_memory() {
    if !have_gnu_time("many_lines_stream_in_bounded_memory") {
        return;
    }
    let sb = Sandbox::new();
    let key = sb.vector_key("k1");
    let k = key.to_str().unwrap();
    // 20,000 lines of 1000 bytes (20 MB), all signed: memory does not grow
    // with the input.
    let (code, stderr, peak) = run_with_gigabyte(
        &sb,
        "yes \"$(head -c 999 /dev/zero | tr '\\0' a)\" | head -n 20000",
        &format!("olm-sign --lines -k {k}"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(peak < PEAK_LIMIT_KIB, "peak {peak} KiB");
    eprintln!("olm-sign --lines, 20 MB of lines: peak {peak} KiB");
}

/// Which of the tool's output pipes has its reader closed before it runs.
#[derive(Clone, Copy)]
enum Closed {
    Stdout,
    Stderr,
}

/// Runs `tool args` with one output pipe already closed at its reader;
/// returns the exit status and what the tool wrote on the other one.
fn run_with_closed(
    sb: &Sandbox,
    closed: Closed,
    tool: &str,
    args: &[&str],
    stdin: &[u8],
) -> (i32, String) {
    let mut c = sb.cmd(tool);
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    // Close the only reader before the tool writes a byte.
    let mut open: Box<dyn Read> = match closed {
        Closed::Stdout => {
            drop(child.stdout.take());
            Box::new(child.stderr.take().expect("stderr"))
        }
        Closed::Stderr => {
            drop(child.stderr.take());
            Box::new(child.stdout.take().expect("stdout"))
        }
    };
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut input, &data);
    });
    let mut other = String::new();
    open.read_to_string(&mut other).expect("read the open pipe");
    let status = child.wait().expect("wait");
    let _ = writer.join();
    (status.code().unwrap_or(-1), other)
}

#[test]
fn a_closed_stdout_ends_every_tool_quietly() {
    let sb = Sandbox::new();
    let key = sb.vector_key("k1");
    let k = key.to_str().unwrap();
    let lines: Vec<u8> = (0..50_000)
        .flat_map(|i| format!("GET,/api/tags?ts={i}\n").into_bytes())
        .collect();
    // A stored key for olm-store, and --lines input for olm-verify.
    if olm_tests::bin_dir().join("olm-store").exists() {
        sb.run("olm-store", ["put"], &std::fs::read(&key).unwrap())
            .assert_code(0);
    }
    let token = sb.run("olm-sign", ["-k", k], b"x").text();
    let verify_lines: Vec<u8> = (0..20_000)
        .flat_map(|_| format!("{}\tx\n", token.trim()).into_bytes())
        .collect();
    let pub_line =
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1vBU/y4xOtTPdcrtyDAvPqiYVhxhqpehCzdTXR32wE\n";
    let rows: Vec<(&str, Vec<&str>, &[u8])> = vec![
        ("olm-sign", vec!["--lines", "-k", k], &lines),
        (
            "olm-sign",
            vec!["--lines", "--format", "header", "-k", k],
            &lines,
        ),
        ("olm-sign", vec!["-k", k], b"POST,/api/me?ts=1"),
        (
            "olm-sign",
            vec!["-X", "GET", "/api/tags", "--format", "json", "-k", k],
            b"",
        ),
        (
            "olm-sign",
            vec!["-X", "GET", "/api/tags", "--format", "curl", "-k", k],
            b"",
        ),
        (
            "olm-sign",
            vec![
                "--registry",
                r#"Bearer realm="https://r.example/t""#,
                "-k",
                k,
            ],
            b"",
        ),
        ("olm-keygen", vec![], b""),
        ("olm-keygen", vec!["-y", "-k", k], b""),
        ("olm-connect-url", vec!["--name", "box"], pub_line),
        ("olm-sign", vec!["--help"], b""),
        ("olm-verify", vec!["--lines"], &verify_lines),
        ("olm-store", vec!["status"], b""),
        ("olm-store", vec!["get", "--public"], b""),
        ("olm-sign", vec!["--generate", "man"], b""),
        ("olm-sign", vec!["--generate", "bash"], b""),
    ];
    for (tool, args, stdin) in rows {
        if !olm_tests::bin_dir().join(tool).exists() {
            olm_tests::skipped!("SKIPPED {tool} {args:?}: not built here");
            continue;
        }
        let (code, stderr) = run_with_closed(&sb, Closed::Stdout, tool, &args, stdin);
        assert_eq!(code, 0, "{tool} {args:?}: {stderr}");
        assert!(stderr.is_empty(), "{tool} {args:?}: {stderr}");
    }
}

#[test]
fn head_after_lines_is_quiet() {
    let sb = Sandbox::new();
    let key = sb.vector_key("k1");
    let big = sb.path("big");
    let lines: String = (0..100_000).map(|i| format!("GET,/x?ts={i}\n")).collect();
    std::fs::write(&big, lines).expect("write");
    let out = sb.sh(&format!(
        "olm-sign --lines -k {} < {} | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
        key.display(),
        big.display()
    ));
    let text = out.text();
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), 2, "{text}");
    libauth::Token::parse(got[0]).expect("the first token");
    assert_eq!(got[1], "status=0", "stderr: {}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn a_closed_stderr_does_not_turn_a_note_into_a_crash() {
    // `cmd 2>&1 | head -1` closes stderr too: notes and warnings on stderr
    // must not panic (eprintln! does), and the result stays the same.
    let sb = Sandbox::new();
    let key = sb.vector_key("k1");
    let k = key.to_str().unwrap();
    let token = sb.run("olm-sign", ["-k", k], b"x").text();
    let token = token.trim();
    let list = sb.path("authorized_keys");
    let public =
        std::fs::read_to_string(olm_tests::vectors_dir().join("keys").join("k1.pub")).unwrap();
    std::fs::write(&list, format!("this line is garbage\n{public}")).unwrap();
    let list = list.to_str().unwrap();
    let rows: Vec<(&str, Vec<&str>, &[u8], i32)> = vec![
        // A note: the input ends with a newline.
        ("olm-sign", vec!["-k", k], b"x\n", 0),
        // An error line, then its status.
        ("olm-sign", vec!["-k", "/nonexistent"], b"x", 2),
        // A warning about a bad line of the list.
        (
            "olm-verify",
            vec!["--token", token, "--authorized-keys", list],
            b"x",
            0,
        ),
    ];
    for (tool, args, stdin, want) in rows {
        if !olm_tests::bin_dir().join(tool).exists() {
            olm_tests::skipped!("SKIPPED {tool} {args:?}: not built here");
            continue;
        }
        let (code, _stdout) = run_with_closed(&sb, Closed::Stderr, tool, &args, stdin);
        assert_eq!(code, want, "{tool} {args:?}");
    }
    // olm-revoke --local-only reports each backend on stderr.
    if olm_tests::bin_dir().join("olm-revoke").exists() {
        sb.run("olm-store", ["put"], &std::fs::read(&key).unwrap())
            .assert_code(0);
        let (code, _) = run_with_closed(&sb, Closed::Stderr, "olm-revoke", &["--local-only"], b"");
        assert_eq!(code, 0, "olm-revoke --local-only");
        assert!(!sb.ollama_key().exists(), "the key was removed");
    }
}

#[test]
fn no_print_macro_that_can_panic_in_shipped_code() {
    // println!/print!/eprintln!/eprint! panic when their stream is a closed
    // pipe. Shipped code writes through cli::print_line, a locked writer,
    // cli::note or libauth::eprint_line! instead (tests may use them).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    let mut dirs = vec![root.join("libauth").join("src")];
    for tool in std::fs::read_dir(root.join("tools")).unwrap() {
        dirs.push(tool.unwrap().path().join("src"));
    }
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let shipped = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (i, line) in shipped.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for mac in ["println!(", "print!(", "eprintln!(", "eprint!("] {
                let hit = code.match_indices(mac).any(|(at, _)| {
                    // `eprint_line!(` and `cli::eprint_line` are fine.
                    !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if hit {
                    found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "print macros in shipped code:\n{}",
        found.join("\n")
    );
}
