//! A Criterion measurement of this thread's CPU time, for a machine shared
//! with other work: a busy neighbour stretches wall time, not CPU time.
//! `make bench` reports both, and compares the CPU figure with the tools'
//! own user + system time.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use rustix::time::{clock_gettime, ClockId, Timespec};

static WALL: WallTime = WallTime;

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in ns.
pub struct ThreadCpuTime;

fn now_ns() -> u64 {
    let Timespec { tv_sec, tv_nsec } = clock_gettime(ClockId::ThreadCPUTime);
    (tv_sec as u64) * 1_000_000_000 + tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        now_ns()
    }
    fn end(&self, start: u64) -> u64 {
        now_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds either way: print them as wall time does.
        WALL.formatter()
    }
}
