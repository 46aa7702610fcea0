//! Man pages and shell completions, generated from a tool's clap definition.
//!
//! Every tool understands the hidden `olm-TOOL --generate man|bash|zsh|fish`
//! (handled in [`crate::cli::parse`], so a tool needs no code of its own);
//! `make install` uses it. The man page is clap_mangen's NAME, SYNOPSIS,
//! DESCRIPTION and OPTIONS, then the tool's `Examples:` (its `after_help`)
//! and the sections every olm tool shares: EXIT STATUS, ENVIRONMENT, FILES.

use std::io::{self, Write};

use clap::Command;
use clap_complete::Shell;

/// The hidden flag: `olm-TOOL --generate WHAT` writes WHAT on stdout.
pub const FLAG: &str = "--generate";

/// The tools of the olm family, for every man page's SEE ALSO.
pub const FAMILY: &[&str] = &[
    "olm-keygen",
    "olm-store",
    "olm-sign",
    "olm-verify",
    "olm-connect-url",
    "olm-whoami",
    "olm-revoke",
];

/// What `--generate` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifact {
    /// A man page (roff, section 1).
    Man,
    /// A bash completion script.
    Bash,
    /// A zsh completion function (`_olm-TOOL`).
    Zsh,
    /// A fish completion script.
    Fish,
}

impl Artifact {
    /// Every artifact, in the order `make install` writes them.
    pub const ALL: [Artifact; 4] = [Artifact::Man, Artifact::Bash, Artifact::Zsh, Artifact::Fish];

    /// Reads `man`, `bash`, `zsh` or `fish`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The name `--generate` takes.
    pub fn name(self) -> &'static str {
        match self {
            Artifact::Man => "man",
            Artifact::Bash => "bash",
            Artifact::Zsh => "zsh",
            Artifact::Fish => "fish",
        }
    }
}

/// Writes `artifact` for the tool `cmd` describes.
pub fn write(artifact: Artifact, cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = cmd;
    let name = cmd.get_name().to_string();
    let shell = match artifact {
        Artifact::Man => return man_page(cmd, out),
        Artifact::Bash => Shell::Bash,
        Artifact::Zsh => Shell::Zsh,
        Artifact::Fish => Shell::Fish,
    };
    // clap_complete writes to a `Write` by value; collect, then pass on the
    // io error (a closed pipe) instead of letting it panic.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    out.write_all(&buf)?;
    out.flush()
}

/// The man page: clap_mangen's sections, then EXAMPLES and the shared ones,
/// in ASCII where the help text has typographic characters (a C locale's
/// troff cannot draw `…`).
fn man_page(cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    let mut page = Vec::new();
    man_page_utf8(cmd, &mut page)?;
    out.write_all(ascii_fallbacks(&String::from_utf8_lossy(&page)).as_bytes())?;
    out.flush()
}

/// Typographic characters as ASCII; any other non-ASCII character as a roff
/// `\[uXXXX]` escape.
fn ascii_fallbacks(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        match c {
            '…' => out.push_str("..."),
            '–' | '‐' | '‑' => out.push('-'),
            '—' => out.push_str("--"),
            '‘' | '’' => out.push('\''),
            '“' | '”' => out.push('"'),
            '→' => out.push_str("->"),
            '×' => out.push('x'),
            '\u{a0}' => out.push(' '),
            c if c.is_ascii() => out.push(c),
            c => out.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    out
}

fn man_page_utf8(cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    let examples = cmd.get_after_help().map(|h| h.to_string());
    let version = cmd.get_version().unwrap_or_default().to_string();
    let name = cmd.get_name().to_string();
    let man = clap_mangen::Man::new(cmd.clone()).manual("olm manual");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        subcommands_section(&cmd, out)?;
    }
    let mut roff = String::new();
    if let Some(text) = examples {
        roff.push_str(&after_help_sections(&text));
    }
    roff.push_str(&shared_sections(&name, &version));
    out.write_all(roff.as_bytes())?;
    out.flush()
}

/// SUBCOMMANDS: each one with its description and options, on this page
/// (clap_mangen would point to one page per subcommand, which olm does not
/// install).
fn subcommands_section(cmd: &Command, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(b".SH SUBCOMMANDS\n")?;
    let name = cmd.get_name();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let mut head = format!(
            ".SS {} {}\n",
            escape_text(name),
            escape_text(sub.get_name())
        );
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            for line in about.to_string().lines() {
                head.push_str(&if line.trim().is_empty() {
                    ".PP".to_string()
                } else {
                    escape_line(line)
                });
                head.push('\n');
            }
        }
        out.write_all(head.as_bytes())?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            // clap_mangen's option list, under this subcommand's heading.
            let mut options = Vec::new();
            clap_mangen::Man::new(sub.clone()).render_options_section(&mut options)?;
            let options = String::from_utf8_lossy(&options).replace(".SH OPTIONS\n", "");
            out.write_all(options.as_bytes())?;
        }
    }
    Ok(())
}

/// A tool's `after_help` as roff: the `Examples:` block as EXAMPLES (each
/// line kept as written, no filling, so commands stay copyable), anything
/// before it as NOTES.
fn after_help_sections(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| {
        l.trim()
            .trim_end_matches(':')
            .eq_ignore_ascii_case("examples")
    });
    let (notes, examples) = match at {
        Some(i) => (&lines[..i], &lines[i + 1..]),
        None => (&lines[..], &lines[..0]),
    };
    let mut out = String::new();
    if notes.iter().any(|l| !l.trim().is_empty()) {
        out.push_str(".SH NOTES\n");
        out.push_str(&preformatted(notes));
    }
    if !examples.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        out.push_str(&preformatted(examples));
    }
    out
}

/// Lines kept as written (`.nf`), their common indent removed.
fn preformatted(lines: &[&str]) -> String {
    let mut lines = lines.to_vec();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::from(".nf\n");
    for line in lines {
        out.push_str(&escape_line(
            line.get(indent..).unwrap_or(line.trim_start()),
        ));
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}

/// The sections every olm tool shares (CLI.md).
fn shared_sections(name: &str, version: &str) -> String {
    let mut out = String::new();
    out.push_str(
        ".SH EXIT STATUS\n\
         .TP\n\\fB0\\fR\nDone.\n\
         .TP\n\\fB1\\fR\nRefused or failed: a signature does not verify, ollama.com said no, the network failed.\n\
         .TP\n\\fB2\\fR\nUsage or bad input: an unknown flag, an unreadable or invalid key, a malformed challenge.\n\
         .PP\nAn error is one line, \\fI",
    );
    out.push_str(&escape_text(name));
    out.push_str(
        ": error: WHAT\\fR, naming the file, host or value at fault, then a \\fIhint:\\fR line \
         where there is an obvious fix. No secret byte ever appears on standard error.\n\
         .SH ENVIRONMENT\n\
         .TP\n\\fBHOME\\fR\nThe default key is \\fI$HOME/.ollama/id_ed25519\\fR, where Ollama keeps it.\n\
         .TP\n\\fBOLLAMA_CLOUD_BASE_URL\\fR\nThe base URL of ollama.com or a stand-in (\\fB\\-\\-base\\fR wins).\n\
         .TP\n\\fBOLM_BACKEND\\fR\nThe credential store, \\fBfile\\fR (the default) or \\fBkeyring\\fR.\n\
         .SH FILES\n\
         .TP\n\\fI~/.ollama/id_ed25519\\fR\nThe device's private key (OpenSSH Ed25519, mode 0600); \
         a key that group or others can read is refused.\n\
         .TP\n\\fI~/.ollama/id_ed25519.pub\\fR\nIts public key line.\n\
         .SH SEE ALSO\n",
    );
    let others: Vec<String> = FAMILY
        .iter()
        .filter(|t| **t != name)
        .map(|t| format!("\\fB{}\\fR(1)", escape_text(t)))
        .collect();
    out.push_str(&others.join(",\n"));
    out.push_str(",\n\\fBssh\\-keygen\\fR(1)\n");
    if !version.is_empty() {
        out.push_str(".SH VERSION\n");
        out.push_str(&escape_text(version));
        out.push('\n');
    }
    out
}

/// Escapes text for roff: backslashes, hyphens (so they copy as ASCII `-`).
fn escape_text(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// [`escape_text`], and a line starting with `.` or `'` is not a request.
fn escape_line(s: &str) -> String {
    let e = escape_text(s);
    if e.starts_with('.') || e.starts_with('\'') {
        format!("\\&{e}")
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Command {
        Command::new("olm-demo")
            .version("1.2.3")
            .about("Do a demo thing")
            .arg(
                clap::Arg::new("key")
                    .short('k')
                    .long("key")
                    .value_name("FILE")
                    .help("Read the key from FILE"),
            )
            .after_help("Examples:\n  olm-demo -k key | head -1\n  .hidden\\x")
    }

    fn render(a: Artifact) -> String {
        let mut out = Vec::new();
        write(a, demo(), &mut out).expect("render");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn man_page_has_the_sections_a_reader_expects() {
        let man = render(Artifact::Man);
        for want in [
            ".TH olm-demo 1",
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH OPTIONS",
            "\\-\\-key",
            ".SH EXAMPLES",
            "olm\\-demo \\-k key | head \\-1\n",
            "\\&.hidden\\ex\n",
            ".SH EXIT STATUS",
            ".SH FILES",
            "\\fBolm\\-sign\\fR(1)",
            ".SH VERSION\n1.2.3",
        ] {
            assert!(man.contains(want), "man page lacks {want:?}:\n{man}");
        }
        assert!(!man.contains("Examples:"), "{man}");
        assert!(!man.contains("\\fBolm\\-demo\\fR(1)"), "{man}");
    }

    #[test]
    fn subcommands_and_notes_stay_on_the_page() {
        let cmd = Command::new("olm-x")
            .about("X things")
            .subcommand(
                Command::new("put").about("Put a thing").arg(
                    clap::Arg::new("force")
                        .long("force")
                        .action(clap::ArgAction::SetTrue),
                ),
            )
            .after_help("Backends:\n  file  the file\n\nExamples:\n  olm-x put --force\n");
        let mut out = Vec::new();
        write(Artifact::Man, cmd, &mut out).expect("render");
        let man = String::from_utf8(out).expect("utf8");
        for want in [
            ".SH SUBCOMMANDS",
            ".SS olm\\-x put",
            "Put a thing",
            "\\-\\-force",
            ".SH NOTES",
            "Backends:",
            ".SH EXAMPLES\n.nf\nolm\\-x put \\-\\-force\n.fi",
        ] {
            assert!(man.contains(want), "lacks {want:?}:\n{man}");
        }
        assert!(!man.contains("olm-x-put(1)"), "{man}");
        assert!(!man.contains("Examples:"), "{man}");
    }

    #[test]
    fn man_pages_are_ascii() {
        let cmd = Command::new("olm-u")
            .about("Take `Authorization: …` – or “this” → é")
            .after_help("Examples:\n  olm-u … # done\n");
        let mut out = Vec::new();
        write(Artifact::Man, cmd, &mut out).expect("render");
        let man = String::from_utf8(out).expect("utf8");
        assert!(man.is_ascii(), "{man}");
        assert!(man.contains("Authorization: ..."), "{man}");
        assert!(man.contains("\\[u00E9]"), "{man}");
    }

    #[test]
    fn completions_name_the_flags() {
        assert!(render(Artifact::Bash).contains("--key"));
        assert!(render(Artifact::Zsh).contains("#compdef olm-demo"));
        assert!(render(Artifact::Fish).contains("complete -c olm-demo"));
    }

    #[test]
    fn names_round_trip() {
        for a in Artifact::ALL {
            assert_eq!(Artifact::from_name(a.name()), Some(a));
        }
        assert_eq!(Artifact::from_name("troff"), None);
    }
}
