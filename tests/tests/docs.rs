//! What a user reads: every tool's `--help` carries real examples, and the
//! man page and completions `make install` puts in place are generated from
//! the same clap definition, name every flag, and render cleanly.
//!
//! The tools are found in `tools/olm-*`, so a new tool is covered as soon as
//! it exists.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use olm_tests::Sandbox;

fn tools() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tools");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("tools/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("olm-"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "tools: {names:?}");
    names
}

/// The long flags `--help` lists (without `--help`/`--version`).
fn long_flags(help: &str) -> Vec<String> {
    let mut flags = Vec::new();
    for line in help.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        // The definition, not the description after it (which may mention
        // other flags in prose).
        let definition = line.split("  ").next().unwrap_or_default();
        for word in definition.split([' ', ',', '=', '<', '[']) {
            if let Some(name) = word.strip_prefix("--") {
                if !name.is_empty() && name != "help" && name != "version" {
                    flags.push(name.to_string());
                }
            }
        }
    }
    flags.sort();
    flags.dedup();
    flags
}

fn generate(sb: &Sandbox, tool: &str, what: &str) -> String {
    let out = sb.run(tool, ["--generate", what], b"");
    out.assert_code(0);
    assert!(out.stderr.is_empty(), "{tool} {what}: {}", out.stderr);
    out.text()
}

#[test]
fn every_help_has_real_examples() {
    let sb = Sandbox::new();
    for tool in tools() {
        for flag in ["-h", "--help"] {
            let out = sb.run(&tool, [flag], b"");
            out.assert_code(0);
            let help = out.text();
            let (_, examples) = help
                .split_once("Examples:")
                .unwrap_or_else(|| panic!("{tool} {flag} has no Examples: section:\n{help}"));
            let commands = examples
                .lines()
                .filter(|l| l.trim_start().starts_with("olm-") || l.contains(&format!("| {tool}")))
                .count();
            assert!(
                commands >= 2,
                "{tool} {flag}: two or more example command lines expected:\n{examples}"
            );
        }
    }
}

#[test]
fn man_pages_and_completions_name_every_flag() {
    let sb = Sandbox::new();
    for tool in tools() {
        let help = sb.run(&tool, ["--help"], b"").text();
        let flags = long_flags(&help);
        assert!(!flags.is_empty(), "{tool}: no flags in --help");
        let man = generate(&sb, &tool, "man");
        let bash = generate(&sb, &tool, "bash");
        let zsh = generate(&sb, &tool, "zsh");
        let fish = generate(&sb, &tool, "fish");
        assert!(man.starts_with(".ie") || man.starts_with(".TH"), "{tool}");
        assert!(man.contains(&format!(".TH {tool} 1")), "{tool}: {man}");
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH OPTIONS",
            ".SH EXAMPLES",
            ".SH EXIT STATUS",
        ] {
            assert!(man.contains(section), "{tool} man page lacks {section}");
        }
        assert!(zsh.starts_with(&format!("#compdef {tool}")), "{tool}");
        for flag in &flags {
            let roff = format!("\\-\\-{}", flag.replace('-', "\\-"));
            assert!(man.contains(&roff), "{tool} man page lacks --{flag}");
            assert!(
                bash.contains(&format!("--{flag}")),
                "{tool} bash lacks --{flag}"
            );
            assert!(
                zsh.contains(&format!("--{flag}")),
                "{tool} zsh lacks --{flag}"
            );
            assert!(
                fish.contains(&format!("-l {flag}")),
                "{tool} fish lacks --{flag}"
            );
        }
    }
}

#[test]
fn man_pages_render_without_warnings() {
    if Command::new("man").arg("--version").output().is_err() {
        olm_tests::skipped!("SKIPPED man_pages_render_without_warnings: man is not installed (apt-get install man-db)");
        return;
    }
    let sb = Sandbox::new();
    for tool in tools() {
        let page = sb.path(&format!("{tool}.1"));
        std::fs::write(&page, generate(&sb, &tool, "man")).expect("write page");
        let mut c = sb.cmd("man");
        c.args(["--warnings", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C");
        let out = olm_tests::run_with_stdin(c, b"");
        out.assert_code(0);
        assert!(
            out.stderr.is_empty(),
            "{tool}: roff warnings: {}",
            out.stderr
        );
        let text = out.text();
        assert!(text.contains("EXAMPLES"), "{tool}: {text}");
        assert!(text.contains(&tool), "{tool}: {text}");
    }
}

#[test]
fn bash_completion_loads() {
    let sb = Sandbox::new();
    for tool in tools() {
        let script = sb.path(&format!("{tool}.bash"));
        std::fs::write(&script, generate(&sb, &tool, "bash")).expect("write");
        let out = sb.sh(&format!(
            "source {} && complete -p {tool}",
            script.display()
        ));
        out.assert_code(0);
        assert!(out.text().contains(&tool), "{tool}: {}", out.text());
    }
}

#[test]
fn make_install_puts_everything_in_place() {
    if Command::new("make").arg("--version").output().is_err() {
        olm_tests::skipped!("SKIPPED make_install_puts_everything_in_place: make is not installed");
        return;
    }
    let sb = Sandbox::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dest = sb.path("dest");
    let profile = olm_tests::bin_dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // CARGO=true: the binaries are built already (make test builds first).
    let out = olm_tests::run_with_stdin(
        {
            let mut c = Command::new("make");
            c.arg("-C")
                .arg(&root)
                .arg("install")
                .arg(format!("DESTDIR={}", dest.display()))
                .arg("PREFIX=/usr")
                .arg(format!("PROFILE={profile}"))
                .arg("CARGO=true");
            c
        },
        b"",
    );
    out.assert_code(0);
    let usr = dest.join("usr");
    for tool in tools() {
        for path in [
            format!("bin/{tool}"),
            format!("share/man/man1/{tool}.1"),
            format!("share/bash-completion/completions/{tool}"),
            format!("share/zsh/site-functions/_{tool}"),
            format!("share/fish/vendor_completions.d/{tool}.fish"),
        ] {
            let p = usr.join(&path);
            assert!(p.is_file(), "make install did not write {path}");
            assert!(std::fs::metadata(&p).unwrap().len() > 0, "{path} is empty");
        }
        let installed = sb.run(
            usr.join("bin").join(&tool).to_str().unwrap(),
            ["--version"],
            b"",
        );
        installed.assert_code(0);
    }
}
