//! Benchmark helper for `scripts/bench.sh` (not a test: it prints figures, it asserts nothing).
//!
//! - `gen-export --entries N --authors A --out FILE` writes a valid export of N entries spread
//!   over A authors, signing on all cores, without going through RocksDB (so generating a
//!   million entries takes seconds, not the minutes a synced write per entry would).
//! - `raw-verify FILE` decodes the same file outside the clock, then times the auditor's own
//!   signature primitive (`plexus_crypto::verify_batch_with_fallback`, through
//!   `verify_batch_parallel`) over all its signatures on all cores, in the same chunk size the
//!   auditor uses: the ceiling the auditor is compared against.
//! - `backfill --entries N` fills one node's log with N entries, starts a fresh node on
//!   loopback, connects it, and times how long backfill alone takes to copy the whole feed, with
//!   the CPU time the process used meanwhile (both nodes run in it).
//! - `governed-ingest --entries N --rounds R` times storing N entries of one author through
//!   the backfill path (`Log::ingest_entries`: batch verification, then the one write path; 1,000 per batch) into a log where the
//!   namespace is open and into one where it is governed (a member with a role, a body cap and
//!   a rate limit every entry is checked against), alternating R rounds: the cost of policy.
//! - `sync-feeds --feeds N --sessions S` fills one node's log with N feeds of one entry each,
//!   times a fresh node converging with it (reconciliation and fetching), with the sessions,
//!   rounds and messages of both nodes and the bytes each way; then, the two in sync, times S
//!   reconciliation sessions (median) and what each costs, rounds, messages and bytes each way.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use plexus_crypto::{verify_batch_parallel, BatchItem, Keypair, Sha256Stream};
use plexus_protocol::export::{ExportHeader, ExportTrailer};
use plexus_protocol::{cbor, Entry};
use plexus_tests::fixtures::signed_chain;
use rayon::prelude::*;

/// Benchmark helper for scripts/bench.sh: prints figures as JSON, asserts nothing.
#[derive(Debug, Parser)]
#[command(name = "plexus-bench")]
enum Benchmark {
    /// Write a valid export of N entries spread over A authors
    GenExport {
        #[arg(long)]
        entries: u64,
        #[arg(long)]
        authors: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Time the auditor's own batch signature check over an export's signatures, all cores
    RawVerify { file: PathBuf },
    /// Time backfill of N entries to a fresh node
    Backfill {
        #[arg(long)]
        entries: u64,
    },
    /// Time a fresh node converging with a peer holding N one-entry feeds, then S sessions
    /// between the two in sync
    SyncFeeds {
        #[arg(long)]
        feeds: usize,
        #[arg(long, default_value_t = 20)]
        sessions: u64,
    },
    /// Time storing N entries into an open and a governed namespace, alternating R rounds
    GovernedIngest {
        #[arg(long)]
        entries: u64,
        #[arg(long)]
        rounds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Benchmark::parse() {
        Benchmark::GenExport {
            entries,
            authors,
            out,
        } => gen_export(entries, authors, out),
        Benchmark::RawVerify { file } => raw_verify(&file),
        Benchmark::Backfill { entries } => backfill(entries),
        Benchmark::GovernedIngest { entries, rounds } => governed_ingest(entries, rounds),
        Benchmark::SyncFeeds { feeds, sessions } => sync_feeds(feeds, sessions),
    }
}

/// (a) A fresh node converging with a peer holding `feeds` one-entry feeds, (b) then `sessions`
/// reconciliation sessions between the two, now in sync. Prints one JSON object: for each part
/// the seconds, the sessions, rounds and messages of both nodes, and the bytes each way.
fn sync_feeds(feeds: usize, sessions: u64) -> anyhow::Result<()> {
    use plexus_tests::cluster::{connect, shutdown, spawn_node, test_net_config, NAMESPACE};
    use plexus_tests::fixtures::one_entry_feeds;
    use std::time::Duration;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let holder = spawn_node(test_net_config()).await;
        for chunk in one_entry_feeds(NAMESPACE, feeds, 3_000_000).chunks(10_000) {
            holder
                .node
                .log()
                .ingest_entries(chunk.to_vec(), "bench", 0)?;
        }
        let fresh = spawn_node(test_net_config()).await;
        let started = Instant::now();
        let cpu_started = process_cpu_seconds();
        connect(&fresh, &holder).await;
        // The log's feed count is a counter (O(1)), read again at each change of the log.
        let mut changes = fresh.node.changes();
        while fresh.node.log().stats()?.feeds < feeds as u64 {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(1_200),
                "no convergence in 20 minutes"
            );
            let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
        }
        let converge_seconds = started.elapsed().as_secs_f64();
        let cpu_seconds = process_cpu_seconds() - cpu_started;
        anyhow::ensure!(
            fresh.node.log().heads()? == holder.node.log().heads()?,
            "the fresh node holds as many feeds as its peer, but not the same heads"
        );
        let converged = Exchange::since_start(&fresh, &holder).await?;
        // In sync: one session at a time, started by hand and timed until its answer is in,
        // after one more that lets the tail of the convergence (rounds and fetches still in
        // flight when the last feed came) finish uncounted. Periodic anti-entropy sessions
        // (either side) run meanwhile and count too: the costs are per session, whichever
        // node began it.
        timed_session(&fresh).await?;
        let baseline = Exchange::since_start(&fresh, &holder).await?;
        let mut times = Vec::new();
        for _ in 0..sessions {
            times.push(timed_session(&fresh).await?);
        }
        let in_sync = Exchange::since_start(&fresh, &holder)
            .await?
            .minus(&baseline);
        times.sort_by(f64::total_cmp);
        let median_ms = times.get(times.len() / 2).copied().unwrap_or(0.0);
        let per_session = |value: u64| value as f64 / in_sync.sessions.max(1) as f64;
        let figures = serde_json::json!({
            "feeds": feeds,
            "fresh": {
                "seconds": converge_seconds,
                "cpu_seconds": cpu_seconds,
                "sessions": converged.sessions,
                "rounds": converged.rounds,
                "messages": converged.messages,
                "reconcile_bytes_to_holder": converged.reconcile_to_holder,
                "reconcile_bytes_to_fresh": converged.reconcile_to_fresh,
                "fetch_requests": converged.fetch_requests,
                "fetch_request_bytes": converged.fetch_to_holder,
                "entry_bytes": converged.fetch_to_fresh,
                "bytes_to_holder": converged.reconcile_to_holder + converged.fetch_to_holder,
                "bytes_to_fresh": converged.reconcile_to_fresh + converged.fetch_to_fresh,
            },
            "in_sync": {
                "sessions": in_sync.sessions,
                "session_ms_median": median_ms,
                "rounds_per_session": per_session(in_sync.rounds),
                "messages_per_session": per_session(in_sync.messages),
                "bytes_to_holder_per_session":
                    per_session(in_sync.reconcile_to_holder + in_sync.fetch_to_holder),
                "bytes_to_fresh_per_session":
                    per_session(in_sync.reconcile_to_fresh + in_sync.fetch_to_fresh),
                "fetch_requests": in_sync.fetch_requests,
            },
        });
        println!("{figures}");
        shutdown(vec![fresh, holder]).await;
        anyhow::Ok(())
    })
}

/// Starts a reconciliation session of `node` with its peers and waits until it has had its
/// answer (a session between nodes in sync is one round); returns the milliseconds it took.
async fn timed_session(node: &plexus_tests::cluster::TestNode) -> anyhow::Result<f64> {
    let start = node.node.net().status().await?.reconcile;
    let begun = Instant::now();
    node.node.net().sync_now().await?;
    loop {
        let now = node.node.net().status().await?.reconcile;
        if now.sessions > start.sessions
            && now.messages >= start.messages + 2 * (now.sessions - start.sessions)
        {
            return Ok(begun.elapsed().as_secs_f64() * 1e3);
        }
        anyhow::ensure!(
            begun.elapsed() < std::time::Duration::from_secs(60),
            "a session did not end"
        );
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
}

/// What two nodes exchanged for sync (reconciliation and fetches, both directions) since they
/// started, from their own counters (CBOR-encoded messages; fetched entries as their
/// envelopes' bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Exchange {
    sessions: u64,
    rounds: u64,
    messages: u64,
    reconcile_to_holder: u64,
    reconcile_to_fresh: u64,
    fetch_requests: u64,
    fetch_to_holder: u64,
    fetch_to_fresh: u64,
}

impl Exchange {
    async fn since_start(
        fresh: &plexus_tests::cluster::TestNode,
        holder: &plexus_tests::cluster::TestNode,
    ) -> anyhow::Result<Exchange> {
        let (fresh, holder) = (
            fresh.node.net().status().await?,
            holder.node.net().status().await?,
        );
        let (ours, theirs) = (fresh.reconcile, holder.reconcile);
        // Each node counts the requests it sent and the answers it received, as initiator.
        Ok(Exchange {
            sessions: ours.sessions + theirs.sessions,
            rounds: ours.rounds + theirs.rounds,
            messages: ours.messages + theirs.messages,
            reconcile_to_holder: ours.bytes_sent + (theirs.bytes - theirs.bytes_sent),
            reconcile_to_fresh: theirs.bytes_sent + (ours.bytes - ours.bytes_sent),
            fetch_requests: fresh.fetch.requests + holder.fetch.requests,
            fetch_to_holder: fresh.fetch.request_bytes + holder.fetch.bytes,
            fetch_to_fresh: holder.fetch.request_bytes + fresh.fetch.bytes,
        })
    }

    fn minus(&self, earlier: &Exchange) -> Exchange {
        Exchange {
            sessions: self.sessions - earlier.sessions,
            rounds: self.rounds - earlier.rounds,
            messages: self.messages - earlier.messages,
            reconcile_to_holder: self.reconcile_to_holder - earlier.reconcile_to_holder,
            reconcile_to_fresh: self.reconcile_to_fresh - earlier.reconcile_to_fresh,
            fetch_requests: self.fetch_requests - earlier.fetch_requests,
            fetch_to_holder: self.fetch_to_holder - earlier.fetch_to_holder,
            fetch_to_fresh: self.fetch_to_fresh - earlier.fetch_to_fresh,
        }
    }
}

fn gen_export(entries: u64, authors: u64, out: PathBuf) -> anyhow::Result<()> {
    let exporter = Keypair::generate();
    let per_author = entries / authors;
    let keys: Vec<Keypair> = (0..authors).map(|_| Keypair::generate()).collect();
    let file = std::fs::File::create(&out)?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut digest = Sha256Stream::new();
    let mut write = |bytes: &[u8], writer: &mut BufWriter<std::fs::File>| -> anyhow::Result<()> {
        digest.update(bytes);
        writer.write_all(bytes)?;
        Ok(())
    };
    let header = ExportHeader {
        exporter: exporter.agent_id(),
        created_ms: 1_767_225_600_000,
        entry_count: per_author * authors,
    };
    write(&header.encode(), &mut writer)?;
    let started = Instant::now();
    // Feeds are independent chains: sign each author's chain on its own core, then write them
    // in export order (feed by feed).
    let chains: Vec<Vec<Vec<u8>>> = keys
        .par_iter()
        .map(|key| {
            signed_chain(key, "bench", per_author)
                .iter()
                .map(Entry::encode)
                .collect::<Vec<_>>()
        })
        .collect();
    for chain in &chains {
        for envelope in chain {
            write(envelope, &mut writer)?;
        }
    }
    let count = per_author * authors;
    let trailer = ExportTrailer::sign(&exporter, count, digest.clone().finish());
    writer.write_all(&trailer.encode())?;
    writer.flush()?;
    eprintln!(
        "generated {count} entries by {authors} authors in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn raw_verify(path: &std::path::Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)?;
    let mut position = 0;
    let mut authors = Vec::new();
    let mut messages = Vec::new();
    let mut signatures = Vec::new();
    while position < bytes.len() {
        let len = cbor::item_len(&bytes[position..])?.context("truncated file")?;
        let item = &bytes[position..position + len];
        position += len;
        if let Ok(entry) = Entry::decode(item) {
            authors.push(entry.header().author);
            messages.push(entry.signing_input());
            signatures.push(*entry.signature());
        }
    }
    drop(bytes);
    let count = signatures.len();
    let items: Vec<BatchItem<'_>> = authors
        .iter()
        .zip(&messages)
        .zip(&signatures)
        .map(|((author, message), signature)| BatchItem {
            author,
            message,
            signature,
        })
        .collect();
    let started = Instant::now();
    let all_good = verify_batch_parallel(&items).is_ok();
    let seconds = started.elapsed().as_secs_f64();
    if !all_good {
        bail!("raw batch verification failed: the file is not valid");
    }
    println!(
        "{{\"signatures\": {count}, \"seconds\": {seconds:.3}, \"per_second\": {:.0}}}",
        count as f64 / seconds
    );
    Ok(())
}

fn backfill(entries: u64) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        use plexus_tests::cluster::{
            connect, shutdown, spawn_node, test_net_config, wait_converged,
        };
        let writer = spawn_node(test_net_config()).await;
        let author = Keypair::generate();
        let chain = signed_chain(&author, plexus_tests::cluster::NAMESPACE, entries);
        for batch in chain.chunks(1000) {
            writer
                .node
                .log()
                .ingest_entries(batch.to_vec(), "bench", 0)?;
        }
        let late = spawn_node(test_net_config()).await;
        let started = Instant::now();
        let cpu_started = process_cpu_seconds();
        connect(&late, &writer).await;
        let probe_net = late.node.net().clone();
        let probe_log = std::sync::Arc::clone(late.node.log());
        let probe = tokio::spawn(async move {
            let mut every_second = tokio::time::interval(std::time::Duration::from_secs(1));
            every_second.tick().await;
            loop {
                every_second.tick().await;
                if let (Ok(net), Ok(stats)) = (probe_net.status().await, probe_log.stats()) {
                    eprintln!(
                        "backfill: {} stored, {} pending, {} fetched, {} requests in flight, {} queued",
                        stats.entries,
                        stats.pending,
                        net.entries_fetched,
                        net.sync_requests_in_flight,
                        net.sync_ranges_queued
                    );
                }
            }
        });
        wait_converged(
            &[&writer, &late],
            1,
            entries,
            std::time::Duration::from_secs(600),
        )
        .await;
        let seconds = started.elapsed().as_secs_f64();
        probe.abort();
        let cpu_seconds = process_cpu_seconds() - cpu_started;
        println!(
            "{{\"entries\": {entries}, \"seconds\": {seconds:.3}, \"per_second\": {:.0}, \
             \"cpu_seconds\": {cpu_seconds:.2}, \"cpu_us_per_entry\": {:.1}}}",
            entries as f64 / seconds,
            cpu_seconds * 1e6 / entries as f64
        );
        shutdown(vec![writer, late]).await;
        anyhow::Ok(())
    })
}

fn governed_ingest(entries: u64, rounds: u64) -> anyhow::Result<()> {
    use plexus_node::store::{Log, LogOptions, TrustRoots};
    let (admin, member) = (Keypair::generate(), Keypair::generate());
    let chain = signed_chain(&member, "bench", entries);
    let policy = serde_json::json!({
        "version": 1,
        "roles": {"writer": ["x-*"]},
        "members": [{"agent": member.agent_id().to_string(), "roles": ["writer"]}],
        "limits": {"maxBodyBytes": 4096, "rate": {"entries": 1000, "windowMs": 1000}},
    });
    let policy = plexus_protocol::value::json_text_to_canonical(&policy.to_string())?;
    let time = |governed: bool| -> anyhow::Result<f64> {
        let dir = tempfile::tempdir()?;
        let trust_roots = if governed {
            TrustRoots::from([(
                "bench".to_owned(),
                std::collections::BTreeSet::from([admin.agent_id()]),
            )])
        } else {
            TrustRoots::new()
        };
        let log = Log::open_with(
            dir.path(),
            LogOptions {
                trust_roots,
                ..LogOptions::default()
            },
        )?;
        log.append_own(&admin, "bench", "policy", policy.clone(), 1_767_225_600_000)?;
        let started = Instant::now();
        for batch in chain.chunks(1000) {
            let outcomes = log.ingest_entries(batch.to_vec(), "bench", 0)?;
            if let Some(refused) = outcomes.iter().find(|outcome| {
                !matches!(outcome, plexus_node::store::IngestOutcome::Accepted { .. })
            }) {
                bail!("the benchmark's entries must all be accepted: {refused:?}");
            }
        }
        Ok(entries as f64 / started.elapsed().as_secs_f64())
    };
    let mut open_rates = Vec::new();
    let mut governed_rates = Vec::new();
    for round in 1..=rounds {
        let open = time(false)?;
        let governed = time(true)?;
        eprintln!("round {round}: open {open:.0} entries/s, governed {governed:.0} entries/s");
        open_rates.push(open);
        governed_rates.push(governed);
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (open, governed) = (median(&mut open_rates), median(&mut governed_rates));
    println!(
        "{{\"entries\": {entries}, \"open_per_second\": {open:.0}, \"governed_per_second\": \
         {governed:.0}, \"ratio\": {:.3}}}",
        governed / open
    );
    Ok(())
}

/// CPU time (user and system, all threads) this process has used, from `/proc/self/stat`
/// (in clock ticks of 1/100 s on Linux); 0 where that file does not exist. Next to wall time it
/// shows how much of a figure is the machine being busy with other work.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
