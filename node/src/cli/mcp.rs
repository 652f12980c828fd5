//! `plexus mcp`: the MCP server an LLM host launches over stdio. It talks to the node running
//! on the same data directory through its HTTP API; stdout carries only MCP messages, so every
//! diagnostic goes to stderr.

use std::process::ExitCode;

use anyhow::Context;

use crate::client::ApiClient;
use crate::config::Config;

/// Exit code when no node runs on the data directory (or it does not answer).
pub const EXIT_NO_NODE: u8 = 5;

/// Checks that a node answers, then serves MCP on stdin and stdout until the host closes them.
pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = match ApiClient::for_data_dir(&config.data_dir) {
            Ok(client) => client,
            Err(error) => {
                eprintln!("error: {error}");
                return Ok(ExitCode::from(EXIT_NO_NODE));
            }
        };
        if let Err(error) = client.get("/v1/health").await {
            eprintln!(
                "error: {error} (data directory {}): start the node with `plexus run`",
                config.data_dir.display()
            );
            return Ok(ExitCode::from(EXIT_NO_NODE));
        }
        crate::mcp::serve_stdio(client).await?;
        Ok(ExitCode::SUCCESS)
    })
}
