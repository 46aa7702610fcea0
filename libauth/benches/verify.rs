//! The raw library single-verify rate, with no I/O:
//! `cargo bench -p libauth --bench verify`.
//!
//! `make bench` (scripts/bench.sh) runs this over the very lines it feeds
//! `olm-verify --lines`, `TOKEN<TAB>CHALLENGE`, named by `OLM_BENCH_VERIFY`;
//! without it, it signs 200,000 challenges `POST,/api/me?ts=<n>` with a fixed
//! key first. Tokens are parsed before timing: each iteration is one
//! signature check ([`Token::verify`]) of the next line.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use libauth::{PrivateKey, Token};

mod common;

const COUNT: u64 = 200_000;

fn lines() -> Vec<(Token, Vec<u8>)> {
    match std::env::var_os("OLM_BENCH_VERIFY") {
        Some(path) => {
            let text = std::fs::read(&path).expect("OLM_BENCH_VERIFY");
            text.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let tab = l
                        .iter()
                        .position(|&b| b == b'\t')
                        .expect("TOKEN<TAB>CHALLENGE");
                    let token = std::str::from_utf8(&l[..tab]).expect("token text");
                    (Token::parse(token).expect("token"), l[tab + 1..].to_vec())
                })
                .collect()
        }
        None => {
            let key = PrivateKey::from_seed(&[7u8; 32], "").expect("seed");
            (0..COUNT)
                .map(|n| {
                    let c = format!("POST,/api/me?ts={}", 1_700_000_000 + n).into_bytes();
                    (Token::sign(&key, &c), c)
                })
                .collect()
        }
    }
}

/// Group `verify` in wall time, `verify-cpu` in this thread's CPU time.
fn verify<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let lines = lines();
    assert!(!lines.is_empty(), "no lines");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("single", |b| {
        b.iter(|| {
            let (token, challenge) = &lines[i];
            i = (i + 1) % lines.len();
            token.verify(black_box(challenge)).expect("valid")
        })
    });
    group.finish();
}

fn wall(c: &mut Criterion) {
    verify(c, "verify");
}

fn cpu(c: &mut Criterion<common::ThreadCpuTime>) {
    verify(c, "verify-cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(common::ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
