//! Resident memory of a process running mixed operations through the pool (issue 14: "1 000 000
//! mixed operations through the pool: RSS flat within 5 % after warm-up"), for
//! `bench/mixed_rss.sh`.
//!
//! ```text
//! cargo run --release --example mixed_rss -- postgres|sqlite [OPS] [THREADS] [POOL] [SAMPLES_TSV]
//! ```
//!
//! Defaults: 1 000 000 operations, 8 threads, a pool of 4 (so that threads also wait in the
//! pool's acquisition queue). PostgreSQL: the database `taskstore_bench_mixed_rss` on the shared
//! server (`TASKSTORE_BENCH_PG_URL`), dropped at the end; SQLite: a file in a temporary
//! directory. Both are seeded with 20 owners × 500 tasks through the layer's bulk path.
//!
//! THREADS threads share one operation counter and stop when it reaches OPS. Each operation is,
//! at random (fixed seeds, so every run does the same mix):
//!
//! | share | operation |
//! |---:|---|
//! | 35 % | `tasks().get(owner, id)` of a seeded task |
//! | 20 % | `tasks().list` of a page of 20, one of 4 filters × 8 sort orders; a quarter of them also read the next page by its cursor |
//! | 10 % | `tasks().create`; each thread keeps its last 64 created ids and deletes the oldest once it has 64, so the table stays the same size |
//! | 15 % | `tasks().update` (title and priority) or `complete` / `reopen` of a seeded task |
//! | 8 % | `tasks().stats(owner)` |
//! | 12 % | `with_transaction`: get a task, update its priority, read the owner's stats |
//!
//! Every `OPS / 200` operations the thread that completes that operation reads the process's
//! resident set size from `/proc/self/statm`. Warm-up is the first 10 % of the operations: the
//! figure of record is the growth of the largest sample after warm-up over the sample at the end
//! of warm-up (`growth_max_pct`), pass when ≤ 5 %. Also printed: the RSS before the first
//! operation, at every tenth of the run, at the end, and `VmHWM` (peak). SAMPLES_TSV, when
//! given, receives every sample (`ops<TAB>seconds<TAB>rss_kib`).
//!
//! An operation that fails is counted and printed per kind; the run continues, and the exit
//! status is 1 when any failed or when the growth is over 5 %.

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use taskstore::models::{NewTask, PageRequest, TaskFilter, TaskId, TaskPatch, TaskSort, UserId};
use taskstore::repo::tasks;
use taskstore::{Database, Error};

const DB_NAME: &str = "taskstore_bench_mixed_rss";
const OWNERS: usize = 20;
const TASKS_PER_OWNER: usize = 500;
/// Created tasks each thread keeps before deleting the oldest.
const KEEP_CREATED: usize = 64;
/// Samples over the run.
const SAMPLES: u64 = 200;
/// Share of the run that is warm-up, in percent.
const WARM_UP_PCT: u64 = 10;
/// Allowed growth after warm-up, in percent (issue 14).
const LIMIT_PCT: f64 = 5.0;

/// The kinds of operation, in the order of the table in the module documentation.
const KINDS: [&str; 6] = ["get", "list", "create", "update", "stats", "transaction"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: mixed_rss postgres|sqlite [OPS] [THREADS] [POOL] [SAMPLES_TSV]";
    let backend = args.first().map(String::as_str).context(usage)?;
    let arg = |i: usize, default: u64| -> Result<u64> {
        args.get(i)
            .map(|s| {
                s.replace('_', "")
                    .parse()
                    .with_context(|| format!("{usage}: {s}"))
            })
            .unwrap_or(Ok(default))
    };
    let ops = arg(1, 1_000_000)?;
    let threads = arg(2, 8)? as usize;
    let pool = arg(3, 4)? as u32;
    let samples_file = args.get(4).cloned();
    if ops < SAMPLES || threads == 0 || pool == 0 {
        bail!("{usage}: OPS ≥ {SAMPLES}, THREADS ≥ 1, POOL ≥ 1");
    }

    // Kept alive until the end: dropping them removes the database / the directory.
    let mut _pg = None;
    let mut _dir = None;
    let url = match backend {
        "postgres" => {
            let pg = support::PgBenchDb::create(DB_NAME);
            let url = pg.url.clone();
            _pg = Some(pg);
            url
        }
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("mixed_rss.db").display());
            _dir = Some(dir);
            url
        }
        other => bail!("{usage}: unknown backend {other}"),
    };
    let db = support::layer(&url, pool);
    let mut rng = support::Rng::new(0x5EED_0014_0000_0001);
    let seeded = Arc::new(support::seed(&db, "rss", OWNERS, TASKS_PER_OWNER, &mut rng));

    let step = ops / SAMPLES;
    let counter = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(SAMPLES as usize + 2)));
    let failures: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    let done: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    let start = Instant::now();
    samples
        .lock()
        .expect("samples lock")
        .push((0, 0.0, rss_kib()?));

    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (db, seeded, counter, samples) = (
                db.clone(),
                Arc::clone(&seeded),
                Arc::clone(&counter),
                Arc::clone(&samples),
            );
            let (failures, done) = (Arc::clone(&failures), Arc::clone(&done));
            std::thread::spawn(move || -> Result<()> {
                let mut worker = Worker {
                    db,
                    seeded,
                    rng: support::Rng::new(0xC0FF_EE00 + t as u64),
                    created: std::collections::VecDeque::with_capacity(KEEP_CREATED),
                    first_errors: 0,
                };
                loop {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if n >= ops {
                        return Ok(());
                    }
                    let kind = worker.pick();
                    match worker.run(kind) {
                        Ok(()) => done[kind].fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if worker.first_errors < 3 {
                                worker.first_errors += 1;
                                eprintln!("thread {t}: {} failed: {e}", KINDS[kind]);
                            }
                            failures[kind].fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    if (n + 1) % step == 0 {
                        let rss = rss_kib()?;
                        samples.lock().expect("samples lock").push((
                            n + 1,
                            start.elapsed().as_secs_f64(),
                            rss,
                        ));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("bench thread panicked")?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let end_rss = rss_kib()?;
    let hwm = status_kib("VmHWM")?;

    let mut samples = std::mem::take(&mut *samples.lock().expect("samples lock"));
    samples.sort_by_key(|s| s.0);
    samples.push((ops, elapsed, end_rss));
    if let Some(path) = &samples_file {
        let tsv: String = samples
            .iter()
            .map(|(n, s, r)| format!("{n}\t{s:.3}\t{r}\n"))
            .collect();
        std::fs::write(path, tsv).with_context(|| format!("writing {path}"))?;
    }

    let warm_at = ops * WARM_UP_PCT / 100;
    let warm = samples
        .iter()
        .find(|s| s.0 >= warm_at)
        .context("no sample at the end of warm-up")?;
    let after: Vec<_> = samples.iter().filter(|s| s.0 >= warm.0).collect();
    let max = after.iter().map(|s| s.2).max().unwrap_or(warm.2);
    let min = after.iter().map(|s| s.2).min().unwrap_or(warm.2);
    let pct = |x: u64| (x as f64 - warm.2 as f64) * 100.0 / warm.2 as f64;
    let mib = |kib: u64| kib as f64 / 1024.0;

    let s = db.stats();
    println!(
        "backend={backend} ops={ops} threads={threads} pool={pool} seconds={elapsed:.1} ops_per_sec={:.0}",
        ops as f64 / elapsed
    );
    let per_kind: Vec<String> = (0..KINDS.len())
        .map(|k| {
            format!(
                "{}={} (failed {})",
                KINDS[k],
                done[k].load(Ordering::Relaxed),
                failures[k].load(Ordering::Relaxed)
            )
        })
        .collect();
    println!("operations: {}", per_kind.join(", "));
    println!(
        "pool: acquire p50={} µs p99={} µs, timeouts={}",
        s.acquire_latency.p50_us, s.acquire_latency.p99_us, s.timeouts
    );
    let tenths: Vec<String> = (0..=10)
        .filter_map(|i| samples.iter().find(|x| x.0 >= ops * i / 10))
        .map(|(n, _, r)| format!("{}k:{:.1}", n / 1000, mib(*r)))
        .collect();
    println!("rss_mib_by_ops: {}", tenths.join(" "));
    println!(
        "rss_before_ops_mib={:.1} rss_after_warmup_mib={:.1} (at {} ops) rss_min_after_mib={:.1} rss_max_after_mib={:.1} rss_end_mib={:.1} vm_hwm_mib={:.1}",
        mib(samples[0].2),
        mib(warm.2),
        warm.0,
        mib(min),
        mib(max),
        mib(end_rss),
        mib(hwm)
    );
    let growth = pct(max);
    let failed: u64 = failures.iter().map(|f| f.load(Ordering::Relaxed)).sum();
    let pass = growth <= LIMIT_PCT;
    println!(
        "growth_max_pct={growth:.2} growth_end_pct={:.2} limit_pct={LIMIT_PCT} verdict={}",
        pct(end_rss),
        if pass { "pass" } else { "miss" }
    );
    drop(db);
    if !pass || failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

struct Worker {
    db: Database,
    seeded: Arc<support::Seeded>,
    rng: support::Rng,
    /// This thread's created tasks, oldest first, at most [`KEEP_CREATED`].
    created: std::collections::VecDeque<(UserId, TaskId)>,
    first_errors: u32,
}

impl Worker {
    /// An index into [`KINDS`] with the shares of the module documentation.
    fn pick(&mut self) -> usize {
        match self.rng.below(100) {
            0..35 => 0,
            35..55 => 1,
            55..65 => 2,
            65..80 => 3,
            80..88 => 4,
            _ => 5,
        }
    }

    fn run(&mut self, kind: usize) -> taskstore::Result<()> {
        let Self {
            db,
            seeded,
            rng,
            created,
            ..
        } = self;
        let owner = |rng: &mut support::Rng| seeded.users[rng.below(seeded.users.len())].0;
        let task = |rng: &mut support::Rng| {
            let (owner, ids) = &seeded.users[rng.below(seeded.users.len())];
            (*owner, ids[rng.below(ids.len())])
        };
        let tasks = db.tasks();
        match kind {
            0 => {
                let (owner, id) = task(rng);
                std::hint::black_box(tasks.get(owner, id)?);
            }
            1 => {
                let owner = owner(rng);
                let filter = match rng.below(4) {
                    0 => TaskFilter::default(),
                    1 => TaskFilter {
                        completed: Some(false),
                        ..TaskFilter::default()
                    },
                    2 => TaskFilter {
                        priority_min: Some(3),
                        ..TaskFilter::default()
                    },
                    _ => TaskFilter {
                        search: Some("report section 1".into()),
                        ..TaskFilter::default()
                    },
                };
                let sort = TaskSort::ALL[rng.below(TaskSort::ALL.len())];
                let page = tasks.list(owner, &filter, sort, &PageRequest::first(20))?;
                if rng.below(4) == 0 && page.next_cursor.is_some() {
                    let next = PageRequest::after(20, page.next_cursor);
                    std::hint::black_box(tasks.list(owner, &filter, sort, &next)?);
                }
            }
            2 => {
                let owner = owner(rng);
                let title = format!("Mixed task {}", rng.next_u64());
                let task = tasks.create(
                    owner,
                    &NewTask {
                        title: &title,
                        description: (rng.below(2) == 0).then_some("created by mixed_rss"),
                        priority: Some(1 + rng.below(5) as i16),
                    },
                )?;
                if created.len() == KEEP_CREATED
                    && let Some((o, id)) = created.pop_front()
                {
                    tasks.delete(o, id)?;
                }
                created.push_back((owner, task.id));
            }
            3 => {
                let (owner, id) = task(rng);
                match rng.below(3) {
                    0 => {
                        let patch = TaskPatch {
                            title: Some(format!("Updated task {}", rng.next_u64())),
                            priority: Some(1 + rng.below(5) as i16),
                            ..TaskPatch::default()
                        };
                        std::hint::black_box(tasks.update(owner, id, &patch, None)?);
                    }
                    1 => {
                        std::hint::black_box(tasks.complete(owner, id)?);
                    }
                    _ => {
                        std::hint::black_box(tasks.reopen(owner, id)?);
                    }
                }
            }
            4 => {
                let owner = owner(rng);
                std::hint::black_box(tasks.stats(owner)?);
            }
            _ => {
                let (owner, id) = task(rng);
                let priority = 1 + rng.below(5) as i16;
                db.with_transaction(|c| {
                    std::hint::black_box(tasks::get(c, owner, id)?);
                    let patch = TaskPatch {
                        priority: Some(priority),
                        ..TaskPatch::default()
                    };
                    // No expected version: another thread may update the same task between
                    // the read and the write (read committed), which is not what is measured.
                    tasks::update(c, owner, id, &patch, None)?;
                    std::hint::black_box(tasks::stats(c, owner)?);
                    Ok::<_, Error>(())
                })?;
            }
        }
        Ok(())
    }
}

/// The process's resident set size, KiB (`/proc/self/statm`, second field, in pages).
fn rss_kib() -> Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .context("statm: resident field")?
        .parse()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages * page as u64 / 1024)
}

/// A `kB` line of `/proc/self/status` (e.g. `VmHWM`, the peak resident set size).
fn status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("/proc/self/status: {field}"))
}
