//! What one side of the propagation benchmark costs: latencies, the process's CPU time and
//! loopback bytes per message, and the idle background every side carries.

use std::time::Duration;

use tokio::time::Instant;

use crate::{percentile, plain::PlainSide};

/// Latencies (ms) and costs measured on one side.
#[derive(Debug, Default)]
pub(crate) struct Sample {
    latencies: Vec<f64>,
    pub(crate) lost: u64,
    cpu_ms: u64,
    wire_bytes: u64,
    wire_packets: u64,
    /// Wall time spent in this side's rounds.
    wall: Duration,
}

/// The process's CPU time, loopback counters and the time when one side's round began.
pub(crate) struct Meter {
    cpu_ms: u64,
    sent: u64,
    packets: u64,
    wall: Instant,
}

impl Meter {
    pub(crate) fn start() -> Meter {
        let (sent, packets) = loopback();
        Meter {
            cpu_ms: cpu_ms(),
            sent,
            packets,
            wall: Instant::now(),
        }
    }
}

/// What the process spends with every cluster idle: CPU and loopback bytes per second
/// (heartbeats, pings, timers). Every side's rounds carry it, for as long as they last.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Background {
    pub(crate) cpu_ms_per_second: f64,
    pub(crate) bytes_per_second: f64,
}

impl Background {
    /// Measures a quiet stretch of `length`: waiting out the time is the measurement.
    pub(crate) async fn measure(length: Duration) -> Background {
        let (cpu, sent) = (cpu_ms(), loopback_bytes());
        let mut timer = tokio::time::interval(length);
        timer.tick().await;
        let started = Instant::now();
        timer.tick().await;
        let seconds = started.elapsed().as_secs_f64();
        Background {
            cpu_ms_per_second: (cpu_ms() - cpu) as f64 / seconds,
            bytes_per_second: (loopback_bytes() - sent) as f64 / seconds,
        }
    }
}

impl Sample {
    pub(crate) fn add(&mut self, latency: Duration) {
        self.latencies.push(latency.as_secs_f64() * 1000.0);
    }

    /// Publishes `messages` messages on a plain cluster, one at a time.
    pub(crate) async fn measure(
        &mut self,
        side: &mut PlainSide,
        messages: u64,
    ) -> anyhow::Result<()> {
        let meter = Meter::start();
        for _ in 0..messages {
            match side.publish_one().await? {
                Some(latency) => self.add(latency),
                None => self.lost += 1,
            }
        }
        self.charge(meter);
        Ok(())
    }

    /// Adds what the process spent since `meter` started to this side's costs.
    pub(crate) fn charge(&mut self, meter: Meter) {
        let (sent, packets) = loopback();
        self.cpu_ms += cpu_ms() - meter.cpu_ms;
        self.wire_bytes += sent - meter.sent;
        self.wire_packets += packets - meter.packets;
        self.wall += meter.wall.elapsed();
    }

    pub(crate) fn percentile(&self, fraction: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        percentile(&sorted, fraction)
    }

    pub(crate) fn summary(
        &self,
        published: u64,
        mean_mesh: f64,
        idle: Background,
    ) -> serde_json::Value {
        let published = published.max(1) as f64;
        let seconds = self.wall.as_secs_f64();
        serde_json::json!({
            "samples": self.latencies.len(),
            "lost": self.lost,
            "p50_ms": self.percentile(0.50),
            "p95_ms": self.percentile(0.95),
            "p99_ms": self.percentile(0.99),
            "max_ms": self.percentile(1.0),
            "cpu_ms_per_message": self.cpu_ms as f64 / published,
            "wire_bytes_per_message": (self.wire_bytes as f64 / published).round(),
            "wire_packets_per_message": (self.wire_packets as f64 / published).round(),
            "cpu_ms_per_message_less_idle":
                (self.cpu_ms as f64 - idle.cpu_ms_per_second * seconds) / published,
            "wire_bytes_per_message_less_idle":
                ((self.wire_bytes as f64 - idle.bytes_per_second * seconds) / published).round(),
            "mean_mesh": mean_mesh,
        })
    }
}

/// Bytes and packets sent over the loopback interface so far (from `/proc/net/dev`; Linux):
/// every byte the benchmark's swarms exchange, framing and encryption included.
fn loopback() -> (u64, u64) {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    let counters: Vec<u64> = dev
        .lines()
        .find(|line| line.trim_start().starts_with("lo:"))
        .and_then(|line| line.split(':').nth(1))
        .map(|counters| {
            counters
                .split_whitespace()
                .filter_map(|counter| counter.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    (
        counters.first().copied().unwrap_or(0),
        counters.get(1).copied().unwrap_or(0),
    )
}

fn loopback_bytes() -> u64 {
    loopback().0
}

/// CPU time (user and system) this process has used so far, in milliseconds, from
/// `/proc/self/stat` (Linux; in clock ticks of 10 ms, plenty over a round of messages).
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&index| {
            fields
                .get(index)
                .and_then(|field| field.parse::<u64>().ok())
        })
        .sum();
    ticks * 10
}
