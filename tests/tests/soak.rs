//! A short soak in the test suite (60 s, 4 nodes, a node killed and restarted every 25 s): the
//! same invariants as `scripts/faults.sh soak` (10 minutes, 8 nodes), not its figures.
//! `PLEXUS_SOAK_SECONDS`, `PLEXUS_SOAK_NODES`, `PLEXUS_SOAK_RESTART_SECONDS`,
//! `PLEXUS_SOAK_VIEW_HISTORY_MINUTES`, `PLEXUS_SOAK_SETTLE_SECONDS` and `PLEXUS_SOAK_STEP_MS`
//! change the run; every figure is printed as a `soak | ...` line, and
//! `PLEXUS_SOAK_SAMPLES=FILE` writes every resource sample to FILE as CSV.

use plexus_tests::netnode::plexus_binary;
use plexus_tests::soak::{self, SoakConfig, SKEW_WINDOW_MS};

#[test]
fn a_soak_with_restarts_keeps_leases_exclusive_and_every_export_verifies() {
    let config = SoakConfig::from_env(60, 4, 25);
    let work = tempfile::tempdir().unwrap();
    let report = soak::run(&plexus_binary(), work.path(), &config);

    if let Some(path) = std::env::var_os("PLEXUS_SOAK_SAMPLES") {
        std::fs::write(&path, soak::samples_csv(&report.samples)).unwrap_or_else(|error| {
            panic!("cannot write the samples to {}: {error}", path.display())
        });
    }
    let minutes = config.duration.as_secs_f64() / 60.0;
    eprintln!(
        "soak | run | {} nodes, {:.1} min, {} restarts, {} requests answered, {} refused or \
         unanswered (node down), {} entries",
        config.nodes,
        minutes,
        report.restarts,
        report.steps_answered,
        report.steps_refused,
        report.entries
    );
    let worst =
        |name: &str, unit: &str, per_process: bool, value: &dyn Fn(&soak::Sample) -> f64| {
            let slope = soak::worst_slope(&report.samples, &config, per_process, value);
            let peak = report.samples.iter().map(value).fold(0.0, f64::max);
            eprintln!(
            "soak | slope | {name}: worst slope after warm-up {} {unit}/min, peak {peak:.1} {unit}",
            slope.map_or("n/a".to_owned(), |s| format!("{s:.2}"))
        );
            slope
        };
    worst("rss", "MiB", true, &|s| s.rss_kib as f64 / 1024.0);
    // Memtables and the block cache fill toward their bounds (32 MiB each) for as long as the
    // node writes less than that: what grows besides them is the rest. Once memtables flush,
    // the allocator may keep their memory, and this figure rises as RocksDB's falls.
    worst(
        "rss less RocksDB's memtables and block cache",
        "MiB",
        true,
        &|s| {
            s.rss_less_rocksdb_kib()
                .map_or(f64::NAN, |kib| kib as f64 / 1024.0)
        },
    );
    // Live data: what the node holds allocated, without what the allocator keeps.
    worst("allocated heap", "MiB", true, &|s| {
        s.heap_kib.map_or(f64::NAN, |kib| kib as f64 / 1024.0)
    });
    let fds = worst("open files", "files", true, &|s| s.open_files as f64);
    worst("disk", "MiB", false, &|s| {
        s.disk_bytes as f64 / (1024.0 * 1024.0)
    });
    let longest = report.conflicts.iter().max().copied().unwrap_or(0);
    eprintln!(
        "soak | leases | {} 'holding' answers checked against the exported log, {} contradicted \
         by it (longest {longest} ms after the other agent's claim; allowed {SKEW_WINDOW_MS} ms); \
         {} replays with `plexus audit replay --at`; {} exports verified",
        report.holding_answers,
        report.conflicts.len(),
        report.replays_checked,
        report.exports_verified
    );

    assert!(
        report.restarts >= 1,
        "no node was restarted: nothing was soaked"
    );
    assert!(
        report.holding_answers > 0,
        "no agent ever held a lease: nothing was checked"
    );
    assert_eq!(report.exports_verified, config.nodes);
    assert!(
        longest <= SKEW_WINDOW_MS,
        "an agent was told it held a lease {longest} ms after another agent's claim had it"
    );
    // Open files return to their level once a restarted peer's connections settle: a leak
    // grows with every request, hundreds a minute here.
    if let Some(slope) = fds {
        assert!(
            slope < 20.0,
            "open files grow by {slope:.1} a minute after warm-up"
        );
    }
}
