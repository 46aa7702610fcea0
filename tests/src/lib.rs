//! Helpers for the end-to-end tests: run the built `olm-*` binaries with a
//! temporary `HOME`, feed stdin, read status and output; load the vectors.
//!
//! The binaries come from the same target directory as the test executable,
//! so `cargo build --workspace` (which `make test` runs first) must precede.

// Test support: a failed setup step should stop the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

pub mod fake;
pub mod serve;

/// Directory holding the built binaries (`target/debug` or `target/release`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target/<profile>
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of a built binary; panics with a clear message when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built; run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// The repository's `tests/vectors` folder.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// `tests/vectors/vectors.json`, parsed.
pub fn vectors() -> serde_json::Value {
    let text =
        fs::read_to_string(vectors_dir().join("vectors.json")).expect("vectors.json readable");
    serde_json::from_str(&text).expect("vectors.json is JSON")
}

/// What a finished command left.
#[derive(Debug)]
pub struct Out {
    /// Exit status (`-1` when killed by a signal).
    pub code: i32,
    /// Everything on stdout.
    pub stdout: Vec<u8>,
    /// Everything on stderr, as text.
    pub stderr: String,
}

impl Out {
    /// stdout as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stdout's lines.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_string).collect()
    }

    /// Asserts the exit code, showing stderr when it differs.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "exit code; stderr: {}; stdout: {}",
            self.stderr,
            self.text()
        );
        self
    }

    /// Asserts the failure shape of CLI.md: one `TOOL: error:` line, an
    /// optional `hint:` line, no panic.
    #[track_caller]
    pub fn assert_error(&self, code: i32, tool: &str, needle: &str) -> &Self {
        self.assert_code(code);
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        let errors: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{tool}: error: ")))
            .collect();
        assert_eq!(errors.len(), 1, "one error line expected: {}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {}",
            self.stderr
        );
        self
    }
}

/// A sandbox: a temporary `HOME` and a scratch folder, with the `olm-*`
/// binaries first on `PATH` and no `OLLAMA_*`/`OLM_*` variables inherited.
pub struct Sandbox {
    dir: TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh sandbox.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("olm-e2e-")
            .tempdir()
            .expect("tempdir");
        fs::create_dir(dir.path().join("home")).expect("mkdir home");
        Sandbox { dir }
    }

    /// The sandbox's `HOME`.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A path in the scratch folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `$HOME/.ollama/id_ed25519`.
    pub fn ollama_key(&self) -> PathBuf {
        self.home().join(".ollama").join("id_ed25519")
    }

    /// Copies vector key `name` (k1, k2, k3) into the scratch folder, mode 0600.
    pub fn vector_key(&self, name: &str) -> PathBuf {
        let dest = self.path(name);
        fs::copy(vectors_dir().join("keys").join(name), &dest).expect("copy key");
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o600)).expect("chmod");
        dest
    }

    /// A command for a built binary (or any program) inside the sandbox.
    pub fn cmd(&self, program: &str) -> Command {
        let path = if program.starts_with("olm-") {
            bin(program)
        } else {
            PathBuf::from(program)
        };
        let mut c = Command::new(path);
        self.prepare(&mut c);
        c
    }

    fn prepare(&self, c: &mut Command) {
        c.current_dir(self.dir.path());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("OLLAMA_") || k.starts_with("OLM_") {
                c.env_remove(k.as_ref());
            }
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin_dir()];
        paths.extend(std::env::split_paths(&path));
        c.env("PATH", std::env::join_paths(paths).expect("PATH"));
        c.env("HOME", self.home());
    }

    /// Runs `program args…` with `stdin` and waits.
    pub fn run<I, S>(&self, program: &str, args: I, stdin: &[u8]) -> Out
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.cmd(program);
        c.args(args);
        run_with_stdin(c, stdin)
    }

    /// Runs a bash pipeline inside the sandbox (`set -o pipefail`).
    pub fn sh(&self, script: &str) -> Out {
        let mut c = Command::new("bash");
        self.prepare(&mut c);
        c.arg("-c").arg(format!("set -o pipefail\n{script}"));
        run_with_stdin(c, b"")
    }
}

/// Runs `c`, writing `stdin` to it, and collects the outcome.
///
/// Empty `stdin` means no input at all: `/dev/null`, as a job started
/// without a pipe has. [`run_with_empty_pipe`] gives a pipe that brings
/// nothing, which tools treat differently (`false | olm-connect-url`).
pub fn run_with_stdin(c: Command, stdin: &[u8]) -> Out {
    run_inner(c, (!stdin.is_empty()).then_some(stdin))
}

/// Runs `c` with a pipe on stdin that is closed at once.
pub fn run_with_empty_pipe(c: Command) -> Out {
    run_inner(c, Some(b""))
}

fn run_inner(mut c: Command, stdin: Option<&[u8]>) -> Out {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let writer = stdin.map(|data| {
        let mut input = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        // Write from a thread so a child that does not read cannot deadlock us.
        std::thread::spawn(move || {
            let _ = input.write_all(&data);
        })
    });
    let output = child.wait_with_output().expect("wait");
    if let Some(w) = writer {
        let _ = w.join();
    }
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`skipped`] with `format!` arguments.
#[macro_export]
macro_rules! skipped {
    ($($arg:tt)*) => {
        $crate::skipped(&format!($($arg)*))
    };
}

/// Reports a test (or a row of one) that cannot run here because a tool is
/// missing: loudly, on stderr. Under CI (`CI` set, as `.ci/run` runs), a
/// skip is a failure: `.ci/run` installs everything, so a missing tool
/// means the install step broke, and a green run must not hide it.
#[track_caller]
pub fn skipped(message: &str) {
    eprintln!("{message}");
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{message} (CI must install it: see .ci/run)");
}

/// Whether `program` is on `PATH`.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
