//! The raw library signing rate, with no I/O: `cargo bench -p libauth --bench sign`.
//!
//! `make bench` (scripts/bench.sh) runs this over the very challenges it
//! feeds `olm-sign --lines`, named by `OLM_BENCH_CHALLENGES` (one per line),
//! and the key named by `OLM_BENCH_KEY`; without them it signs the same shape
//! of challenge, `POST,/api/me?ts=<n>` for 200,000 values of n, with a fixed key.
//! Each iteration signs the next challenge, so the time per iteration is the
//! time per token.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use libauth::{PrivateKey, Signer};

mod common;

/// How many challenges `make bench` signs, and the default here.
const COUNT: u64 = 200_000;

fn key() -> PrivateKey {
    match std::env::var_os("OLM_BENCH_KEY") {
        Some(path) => libauth::cli::load_key_file(path.as_ref()).expect("OLM_BENCH_KEY"),
        None => PrivateKey::from_seed(&[7u8; 32], "").expect("seed"),
    }
}

fn challenges() -> Vec<Vec<u8>> {
    match std::env::var_os("OLM_BENCH_CHALLENGES") {
        Some(path) => {
            let text = std::fs::read(&path).expect("OLM_BENCH_CHALLENGES");
            let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            if lines.last().is_some_and(Vec::is_empty) {
                lines.pop();
            }
            lines
        }
        None => (0..COUNT)
            .map(|n| format!("POST,/api/me?ts={}", 1_700_000_000 + n).into_bytes())
            .collect(),
    }
}

/// Group `sign` in wall time, `sign-cpu` in this thread's CPU time.
fn sign<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let key = key();
    let challenges = challenges();
    assert!(!challenges.is_empty(), "no challenges");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));

    // What `olm-sign --lines` does per line, minus the I/O: one token into a
    // reused buffer. This is the rate `make bench` compares against.
    let signer = Signer::new(&key);
    let mut out = Vec::with_capacity(256);
    let mut i = 0;
    group.bench_function("token", |b| {
        b.iter(|| {
            out.clear();
            signer.sign_into(black_box(&challenges[i]), &mut out);
            i = (i + 1) % challenges.len();
            black_box(&out);
        })
    });

    // Ed25519 alone, for scale.
    let mut i = 0;
    group.bench_function("ed25519", |b| {
        b.iter(|| {
            let sig = key.sign(black_box(&challenges[i]));
            i = (i + 1) % challenges.len();
            sig
        })
    });
    group.finish();
}

fn wall(c: &mut Criterion) {
    sign(c, "sign");
}

fn cpu(c: &mut Criterion<common::ThreadCpuTime>) {
    sign(c, "sign-cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(common::ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
