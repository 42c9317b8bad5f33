//! The pool under contention (issue 14, SPEC §9: 64 threads on a pool of 8 keep ≥ 0.95× the
//! throughput of 8 threads): the point query by (owner, id) through the layer with 8, 16, 64 and
//! 256 threads on one pool of 8, and the same on Diesel's plain `r2d2` pool (8 and 64 threads)
//! as the yardstick of "any blocking pool", all in one process and one run.
//!
//! ```text
//! cargo run --release --example contention -- [SECONDS_PER_CASE=1.5] [ROUNDS=10]
//! ```
//!
//! Each round runs every case once (the order reversed every other round, so that a burst of
//! other work on the machine does not always hit the same case); throughput is the median over
//! the rounds, and each ratio is given as the median of its per-round ratios (the two cases of
//! a round run seconds apart) beside the ratio of the medians. The acquisition wait is measured by
//! each calling thread, from the call to the moment its closure runs on the connection
//! (`Database::run`; for r2d2, around `Pool::get`), into an `hdrhistogram` per thread, merged
//! over all rounds of a case.
//!
//! Beside the rates, each case reports the client process's CPU time (user + system) and
//! context switches (voluntary + involuntary) per operation, from `getrusage`: on a machine
//! shared with other work these move far less than the rates do.
//!
//! With `CONTENTION_DUMP=DIR` the merged wait histogram of each case is written to
//! `DIR/wait_<layer|r2d2>_<threads>.tsv` (`quantile<TAB>µs`, one line per step of
//! `hdrhistogram`'s quantile iteration), for `bench/plot_throughput.sh`.
//!
//! Creates `taskstore_bench_contention` on the shared server (`TASKSTORE_BENCH_PG_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`), seeds 100 users × 1 000 tasks
//! through the layer, and drops it at the end.

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use taskstore::models::{TaskId, UserId};

const DB_NAME: &str = "taskstore_bench_contention";
const POOL: u32 = 8;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Layer,
    R2d2,
}

struct Case {
    mode: Mode,
    threads: usize,
    ops_per_sec: Vec<f64>,
    wait_us: Histogram<u64>,
    /// Summed over rounds: operations, client CPU µs, context switches.
    usage: (u64, f64, f64),
}

/// The process's CPU time (user + system, µs) and context switches so far.
fn rusage() -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (
        us(u.ru_utime) + us(u.ru_stime),
        (u.ru_nvcsw + u.ru_nivcsw) as f64,
    )
}

impl Case {
    fn name(&self) -> String {
        let m = match self.mode {
            Mode::Layer => "layer",
            Mode::R2d2 => "plain r2d2",
        };
        format!("{m}, {} threads, pool {POOL}", self.threads)
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.first().map_or(Ok(1.5), |s| s.parse())?;
    let rounds: usize = args.get(1).map_or(Ok(10), |s| s.parse())?;

    let pg = support::PgBenchDb::create(DB_NAME);
    let keys = {
        let db = support::layer(&pg.url, 2);
        let mut rng = support::Rng::new(0x7A5C_5704_E000_0014);
        let seeded = support::seed(&db, "ct", 100, 1_000, &mut rng);
        (0..128)
            .map(|_| {
                let (owner, ids) = &seeded.users[rng.below(seeded.users.len())];
                (*owner, ids[rng.below(ids.len())])
            })
            .collect::<Vec<(UserId, TaskId)>>()
    };
    let keys: Arc<[(UserId, TaskId)]> = keys.into();

    let layer = support::layer(&pg.url, POOL);
    let plain = diesel::r2d2::Pool::builder()
        .max_size(POOL)
        .min_idle(Some(POOL))
        .test_on_check_out(false)
        .build(diesel::r2d2::ConnectionManager::<diesel::PgConnection>::new(&pg.url))?;

    let new_hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut cases: Vec<Case> = [
        (Mode::Layer, 8),
        (Mode::Layer, 16),
        (Mode::Layer, 64),
        (Mode::Layer, 256),
        (Mode::R2d2, 8),
        (Mode::R2d2, 64),
    ]
    .into_iter()
    .map(|(mode, threads)| Case {
        mode,
        threads,
        ops_per_sec: Vec::new(),
        wait_us: new_hist(),
        usage: (0, 0.0, 0.0),
    })
    .collect();

    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..cases.len()).collect()
        } else {
            (0..cases.len()).rev().collect()
        };
        for i in order {
            let case = &mut cases[i];
            let before = rusage();
            let (ops, hist) = run_case(case.mode, case.threads, seconds, &keys, &layer, &plain)?;
            let after = rusage();
            case.usage.0 += hist.len();
            case.usage.1 += after.0 - before.0;
            case.usage.2 += after.1 - before.1;
            eprintln!("round {} {}: {ops:.0} ops/s", round + 1, case.name());
            case.ops_per_sec.push(ops);
            case.wait_us.add(&hist)?;
        }
    }

    let now = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%MZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("\n== {rounds} rounds of {seconds} s per case, {now}");
    println!(
        "| case | median ops/s | rounds | acquisition wait p50 | p99 | p99.9 | max | acquisitions | client CPU µs/op | switches/op |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for c in &cases {
        let h = &c.wait_us;
        let per_op = |x: f64| x / c.usage.0.max(1) as f64;
        println!(
            "| {} | {:.0} | {} | {} µs | {} µs | {} µs | {} µs | {} | {:.1} | {:.2} |",
            c.name(),
            median(&c.ops_per_sec),
            c.ops_per_sec
                .iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.len(),
            per_op(c.usage.1),
            per_op(c.usage.2),
        );
    }
    if let Ok(dir) = std::env::var("CONTENTION_DUMP") {
        std::fs::create_dir_all(&dir)?;
        for c in &cases {
            let m = match c.mode {
                Mode::Layer => "layer",
                Mode::R2d2 => "r2d2",
            };
            let mut out = String::from("quantile\twait_us\n");
            for v in c.wait_us.iter_quantiles(4) {
                out.push_str(&format!(
                    "{}\t{}\n",
                    v.quantile_iterated_to(),
                    v.value_iterated_to()
                ));
            }
            std::fs::write(format!("{dir}/wait_{m}_{}.tsv", c.threads), out)?;
        }
    }
    let find = |mode, threads| {
        cases
            .iter()
            .find(|c| c.mode == mode && c.threads == threads)
            .expect("case exists")
    };
    println!(
        "\n| ratio (throughput) | median of per-round ratios | of medians | per round | target |"
    );
    println!("|---|---:|---:|---|---|");
    for (label, mode, a, b, target) in [
        ("layer: 16 / 8 threads", Mode::Layer, 16, 8, ""),
        ("layer: 64 / 8 threads", Mode::Layer, 64, 8, "≥ 0.95"),
        ("layer: 256 / 8 threads", Mode::Layer, 256, 8, ""),
        (
            "plain r2d2: 64 / 8 threads",
            Mode::R2d2,
            64,
            8,
            "(yardstick)",
        ),
    ] {
        let (x, y) = (find(mode, a), find(mode, b));
        let per_round: Vec<f64> = x
            .ops_per_sec
            .iter()
            .zip(&y.ops_per_sec)
            .map(|(p, q)| p / q)
            .collect();
        println!(
            "| {label} | {:.3} | {:.3} | {} | {target} |",
            median(&per_round),
            median(&x.ops_per_sec) / median(&y.ops_per_sec),
            per_round
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let x = find(Mode::Layer, 64);
    let y = find(Mode::R2d2, 64);
    println!(
        "| layer / plain r2d2, 64 threads | | {:.3} | | (diagnostic) |",
        median(&x.ops_per_sec) / median(&y.ops_per_sec)
    );
    let s = layer.stats();
    println!(
        "\nlayer pool: {} acquisitions, {} timeouts",
        s.acquisitions, s.timeouts
    );
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

type PlainPool = diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<diesel::PgConnection>>;

fn run_case(
    mode: Mode,
    threads: usize,
    seconds: f64,
    keys: &Arc<[(UserId, TaskId)]>,
    layer: &taskstore::Database,
    plain: &PlainPool,
) -> Result<(f64, Histogram<u64>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let keys = Arc::clone(keys);
            let stop = Arc::clone(&stop);
            let barrier = Arc::clone(&barrier);
            let layer = layer.clone();
            let plain = plain.clone();
            std::thread::spawn(move || -> Result<(u64, Histogram<u64>)> {
                let mut rng = support::Rng::new(0x1234 + t as u64);
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                let mut ops = 0u64;
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    let (owner, id) = keys[rng.below(keys.len())];
                    let t0 = Instant::now();
                    let waited = match mode {
                        Mode::Layer => layer.run(|c| {
                            let waited = t0.elapsed();
                            std::hint::black_box(taskstore::repo::tasks::get(c, owner, id)?);
                            Ok(waited)
                        })?,
                        Mode::R2d2 => {
                            let mut c = plain.get()?;
                            let waited = t0.elapsed();
                            std::hint::black_box(
                                support::raw_pg_ops::get(&mut c, owner.0, id.0)?
                                    .context("seeded task missing")?,
                            );
                            waited
                        }
                    };
                    hist.saturating_record(waited.as_micros().max(1) as u64);
                    ops += 1;
                }
                Ok((ops, hist))
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for h in handles {
        let (ops, hist) = h.join().expect("bench thread panicked")?;
        total += ops;
        merged.add(&hist)?;
    }
    Ok((total as f64 / start.elapsed().as_secs_f64(), merged))
}
