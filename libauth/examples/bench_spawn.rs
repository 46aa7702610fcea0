//! Times whole processes for `make bench`: runs each command RUNS times with
//! stdin from a file and stdout to /dev/null, interleaving the commands
//! (A, B, A, B, …) so that a busy machine slows them alike.
//!
//! `bench_spawn RUNS STDIN CMD… [::: CMD…]…` prints one line per command:
//! `total_seconds median_seconds failures`, in the order given.

use std::fs::File;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Runs before the timed ones, to warm the page cache.
const WARMUP: usize = 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(runs), Some(stdin)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bench_spawn RUNS STDIN CMD... [::: CMD...]...");
        return ExitCode::from(2);
    };
    let Ok(runs) = runs.parse::<usize>() else {
        eprintln!("bench_spawn: RUNS must be a number");
        return ExitCode::from(2);
    };
    let commands: Vec<&[String]> = args[2..]
        .split(|a| a == ":::")
        .filter(|c| !c.is_empty())
        .collect();
    if commands.is_empty() {
        eprintln!("bench_spawn: no command");
        return ExitCode::from(2);
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); commands.len()];
    let mut failures = vec![0usize; commands.len()];
    for round in 0..WARMUP + runs {
        for (i, cmd) in commands.iter().enumerate() {
            let input = match File::open(stdin) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("bench_spawn: {stdin}: {e}");
                    return ExitCode::from(2);
                }
            };
            let start = Instant::now();
            let status = Command::new(&cmd[0])
                .args(&cmd[1..])
                .stdin(input)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let took = start.elapsed();
            match status {
                Ok(s) if s.success() => {}
                Ok(_) => failures[i] += 1,
                Err(e) => {
                    eprintln!("bench_spawn: {}: {e}", cmd[0]);
                    return ExitCode::from(2);
                }
            }
            if round >= WARMUP {
                times[i].push(took);
            }
        }
    }
    for (t, f) in times.iter_mut().zip(failures) {
        t.sort();
        let total: Duration = t.iter().sum();
        let median = t.get(t.len() / 2).copied().unwrap_or_default();
        println!("{:.6} {:.6} {f}", total.as_secs_f64(), median.as_secs_f64());
    }
    ExitCode::SUCCESS
}
