//! `plexus ui`: the address of the running node's web page, with the API token in its
//! fragment; and the web server `plexus demo --ui` runs beside the demo's nodes.
//!
//! The token travels after the `#`, which a browser keeps to itself: the page reads it, keeps
//! it in the tab's session storage, removes it from the address bar and sends it only as a
//! bearer header, so it never appears in a request line or a server log.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{ExitCode, Stdio};

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;

use crate::api::{self, ApiState};
use crate::client::ApiClient;
use crate::config::Config;
use crate::node::SharedNode;

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Only print the address; do not start a browser even on a desktop
    #[arg(long)]
    pub no_open: bool,
}

/// The page's address on the API listener `addr`, carrying `token` in the fragment.
pub fn page_url(addr: SocketAddr, token: &str) -> String {
    // A node listening on every interface is still reached on loopback from this machine.
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!(
        "http://{}/ui/#token={token}",
        SocketAddr::new(host, addr.port())
    )
}

pub fn run(config: &Config, args: UiArgs) -> anyhow::Result<ExitCode> {
    let client = ApiClient::for_data_dir(&config.data_dir)?;
    let token = crate::config::load_or_create_token(&config.data_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(client.get("/v1/node")).with_context(|| {
        format!(
            "the node of {} does not answer on {}: is `plexus run` still running?",
            config.data_dir.display(),
            client.addr()
        )
    })?;
    let url = page_url(client.addr(), &token);
    println!("{url}");
    eprintln!("(the address carries this node's API token after the #: share it only as you would the token)");
    if !args.no_open && on_a_desktop() {
        open_browser(&url);
    }
    Ok(ExitCode::SUCCESS)
}

fn on_a_desktop() -> bool {
    cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// Starts the desktop's browser; a failure only means the user opens the printed address.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let started = std::process::Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(error) = started {
        eprintln!("could not start a browser with {opener} ({error}): open the address above");
    }
}

/// The HTTP API (and so the web page) of one node, served until [`PageServer::stop`].
#[derive(Debug)]
pub struct PageServer {
    pub url: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    /// Serves `node`'s API on `listen`, with a token kept in `data_dir` (created if missing).
    pub async fn start(
        node: SharedNode,
        namespace: &str,
        data_dir: &Path,
        listen: SocketAddr,
    ) -> anyhow::Result<PageServer> {
        let token = crate::config::load_or_create_token(data_dir)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| {
                format!(
                    "cannot bind the web page's address {listen}: pick another with --api-listen"
                )
            })?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let state = ApiState {
            node,
            token: token.clone().into(),
            namespace: namespace.into(),
            shutdown: stopped.clone(),
        };
        let mut until_stopped = stopped;
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, api::router(state))
                .with_graceful_shutdown(async move {
                    let _ = until_stopped.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "the demo's web server failed");
            }
        });
        Ok(PageServer {
            url: page_url(addr, &token),
            stop,
            task,
        })
    }

    /// Ends open event streams and waits for the server to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// What `--ui` keeps running after the script: the nodes and the reviewer's web page.
#[derive(Debug)]
pub struct Kept {
    pub page: PageServer,
    pub nodes: Vec<SharedNode>,
}

/// Serves the page until Ctrl-C, then stops the server and every node.
pub async fn keep_running(kept: Kept) -> anyhow::Result<()> {
    println!(
        "\nthe nodes keep running: watch them at\n  {}\n(drag the time cursor back to see the race and the refusal; Ctrl-C stops)",
        kept.page.url
    );
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    kept.page.stop().await;
    for node in kept.nodes {
        node.shutdown().await?;
    }
    println!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::page_url;

    #[test]
    fn the_page_address_carries_the_token_in_the_fragment_and_reaches_loopback() {
        let url = page_url("0.0.0.0:7474".parse().unwrap(), "abc");
        assert_eq!(url, "http://127.0.0.1:7474/ui/#token=abc");
        let url = page_url("[::]:80".parse().unwrap(), "abc");
        assert_eq!(url, "http://[::1]:80/ui/#token=abc");
        let url = page_url("10.0.0.5:7474".parse().unwrap(), "t");
        assert_eq!(url, "http://10.0.0.5:7474/ui/#token=t");
    }
}
