//! A store that cannot be written: `~/.ollama` read-only, or on a full
//! disk. Writing a key must fail with one clear line naming the place, and
//! leave the old key, its `.pub` and the folder exactly as they were.
//!
//! Tests run as root, which `chmod` does not stop, so the test makes the
//! failures for real in a private mount namespace (`unshare -m`): a
//! read-only bind mount, and a 64 KiB tmpfs filled up. Without root or
//! `unshare`, it says SKIPPED.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::process::Command;

use olm_tests::Sandbox;

fn can_mount(test: &str) -> bool {
    let ok = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\" && umount \"$d\"; rc=$?; rmdir \"$d\"; exit $rc")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        olm_tests::skipped!(
            "SKIPPED {test}: needs root and `unshare -m` to mount a read-only or full ~/.ollama"
        );
    }
    ok
}

/// The script: store an old key, break the folder, try to write a new key
/// through every writer, and copy what is left out of the mount.
const SCRIPT: &str = r#"
set -u
D="$HOME/.ollama"
mkdir -p "$D"
olm-keygen > old
# A new key of two pages (a long comment): on the full disk, the page the
# old .pub frees is not enough for it.
olm-keygen -C "$(head -c 6000 /dev/zero | tr '\0' c)" > new
attempt() { # $1: case name; $2: how to break "$D"
  olm-store put < old > /dev/null 2>&1 || { echo "setup put failed" >&2; exit 90; }
  mkdir -p "$1"
  cp "$D/id_ed25519" "$1/before.key"; cp "$D/id_ed25519.pub" "$1/before.pub"
  ls -A "$D" > "$1/before.ls"
  eval "$2" || { echo "cannot break $D" >&2; exit 91; }
  olm-store put --force < new > "$1/put.out" 2> "$1/put.err"; echo $? > "$1/put.code"
  olm-keygen -o "$D/another" > "$1/keygen.out" 2> "$1/keygen.err"; echo $? > "$1/keygen.code"
  olm-keygen -C "$(head -c 6000 /dev/zero | tr '\0' c)" -o "$D/id_ed25519" --force > "$1/force.out" 2> "$1/force.err"; echo $? > "$1/force.code"
  ls -A "$D" | grep -v '^filler' > "$1/after.ls"
  cp "$D/id_ed25519" "$1/after.key"; cp "$D/id_ed25519.pub" "$1/after.pub"
  olm-store get --public > "$1/get.out" 2> "$1/get.err"
}
# Read-only: a read-only bind mount of the folder over itself.
attempt readonly 'mount --bind "$D" "$D" && mount -o remount,bind,ro "$D"'
umount "$D"
# Full: a 64 KiB tmpfs, filled to the last byte.
mount -t tmpfs -o size=64k,mode=0700 tmpfs "$D" || exit 91
attempt full 'dd if=/dev/zero of="$D/filler" bs=4k 2>/dev/null; ! dd if=/dev/zero of="$D/filler2" bs=1 count=1 2>/dev/null'
umount "$D"
"#;

#[test]
fn a_read_only_or_full_store_keeps_the_old_key() {
    if !can_mount("a_read_only_or_full_store_keeps_the_old_key") {
        return;
    }
    let sb = Sandbox::new();
    let mut c = sb.cmd("unshare");
    c.args(["-m", "--propagation", "private", "bash", "-c", SCRIPT]);
    let out = olm_tests::run_with_stdin(c, b"");
    assert_eq!(out.code, 0, "script: {}", out.stderr);
    for case in ["readonly", "full"] {
        for writer in ["put", "keygen", "force"] {
            let err = fs::read_to_string(sb.path(case).join(format!("{writer}.err")));
            eprintln!("{case} / {writer}: {}", err.unwrap_or_default().trim_end());
        }
    }
    let read = |case: &str, name: &str| {
        fs::read_to_string(sb.path(case).join(name))
            .unwrap_or_else(|e| panic!("{case}/{name}: {e}"))
    };
    for (case, why) in [
        ("readonly", "read-only file system"),
        ("full", "no space left on device"),
    ] {
        for writer in ["put", "keygen", "force"] {
            let code: i32 = read(case, &format!("{writer}.code"))
                .trim()
                .parse()
                .unwrap();
            let err = read(case, &format!("{writer}.err"));
            let label = format!("{case} / {writer}");
            assert!(code == 1 || code == 2, "{label}: exit {code}: {err}");
            assert!(!err.contains("panicked"), "{label}: {err}");
            let lines: Vec<&str> = err.lines().collect();
            assert!(
                lines[0].contains(": error: ") && lines.len() <= 2,
                "{label}: one error line expected: {err}"
            );
            assert!(
                err.contains(why),
                "{label}: the error does not say why: {err}"
            );
            assert!(
                err.contains(".ollama"),
                "{label}: the error does not name the place: {err}"
            );
            assert!(
                !err.contains(".olm-") || err.contains(".olm-store.lock"),
                "{label}: the error names a temporary file: {err}"
            );
            assert!(read(case, &format!("{writer}.out")).is_empty(), "{label}");
        }
        // The old key, its .pub, and the folder's listing are untouched:
        // no new file, no temporary file left behind.
        assert_eq!(
            read(case, "after.key"),
            read(case, "before.key"),
            "{case}: key changed"
        );
        assert_eq!(
            read(case, "after.pub"),
            read(case, "before.pub"),
            "{case}: .pub changed"
        );
        assert_eq!(
            read(case, "after.ls"),
            read(case, "before.ls"),
            "{case}: folder changed"
        );
        // And it still works.
        let public = read(case, "get.out");
        assert!(public.starts_with("ssh-ed25519 "), "{case}: {public}");
        assert!(
            read(case, "before.pub").starts_with(public.trim()),
            "{case}"
        );
    }
}
