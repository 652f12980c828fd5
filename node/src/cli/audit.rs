//! `plexus audit export` and `plexus audit verify`.

use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{ExportArgs, VerifyArgs};
use crate::audit::{self, VerifyOptions};
use crate::clock::now_ms;
use crate::config::{self, Config};
use crate::store::Log;

pub fn export(config: &Config, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let keypair = config::load_key_file(&config.key_path())?;
    // Read-only, beside whatever writes the directory (a node, offline publishes).
    let summary = audit::export_data_dir(&config.data_dir, &keypair, &args.out, now_ms())?;
    println!(
        "exported {} entries{} to {} ({} bytes), signed by {}",
        summary.entries,
        if summary.fork_rivals > 0 {
            format!(" and {} fork rivals", summary.fork_rivals)
        } else {
            String::new()
        },
        summary.path.display(),
        summary.bytes,
        keypair.agent_id()
    );
    println!("  digest: {}", summary.digest);
    Ok(ExitCode::SUCCESS)
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let options = VerifyOptions {
        trusted_authors: args
            .trusted_keys
            .as_deref()
            .map(audit::read_trusted_keys)
            .transpose()?,
        trust_roots: crate::config::parse_trust_root_flags(&args.trust_root)?,
        clock_skew_ms: args.clock_skew_ms,
    };
    let metadata = std::fs::metadata(&args.target).map_err(|error| {
        anyhow::anyhow!(
            "cannot read {}: {error}; pass an export file or a data directory",
            args.target.display()
        )
    })?;
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let report = if metadata.is_dir() {
        let total = Log::open_read_only(&args.target)?.stats()?.entries;
        let bar = progress_bar(
            show_progress,
            total,
            "{spinner} verifying [{bar:40}] {human_pos}/{human_len} entries ({per_sec}, eta {eta})",
        );
        let report = audit::verify_data_dir(&args.target, &options, &bar)?;
        bar.finish_and_clear();
        report
    } else {
        let bar = progress_bar(
            show_progress,
            metadata.len(),
            "{spinner} verifying [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        );
        let report = audit::verify_file(&args.target, &options, &bar)?;
        bar.finish_and_clear();
        report
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_human());
    }
    Ok(ExitCode::from(report.exit_code() as u8))
}

fn progress_bar(visible: bool, total: u64, template: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
