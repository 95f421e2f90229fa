//! `kubectl lifecycle ui`: a web view of the environments, served on loopback
//! to the person who started it, with their own kubeconfig: it shows what
//! they may see and does what they may do, and needs nothing in the cluster.
//!
//! - [`auth`]: who may talk to it (a one-time link, then a cookie; the Host,
//!   the Origin and a form token on actions) and the headers of every answer.
//! - [`read`]: what a page shows, read from the API through the same readers
//!   as the commands (`env status`, `outputs`, `env vars`).
//! - [`pages`]: the HTML, pure functions of what was read.
//! - [`live`]: a page's live region, rendered again on every watch event of
//!   what it shows and pushed as server-sent events.
//! - [`logs`]: a run's log, followed as it is written.
//! - [`actions`]: start, stop, redeploy, delete, force-run (the commands' own
//!   requests).

mod actions;
mod assets;
mod auth;
mod live;
mod logs;
mod pages;
mod read;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::routing::{get, post};
use kube::Client;

use crate::cli::UiArgs;
use crate::client::Ctx;

/// What every handler shares.
pub(crate) struct Ui {
    pub(crate) client: Client,
    pub(crate) auth: auth::Auth,
    pub(crate) flashes: actions::Flashes,
    /// Becomes true when the view stops: its streams end, so the server can.
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Ui {
    /// Resolves when the view stops.
    pub(crate) fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.clone();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }
}

pub(crate) type Shared = Arc<Ui>;

pub async fn run(ctx: Ctx, explicit_namespace: Option<&str>, args: &UiArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}\n  hint: another program uses that port: pick another with --port (0: any free port)", args.port))?;
    let port = listener.local_addr().context("the listening socket's address")?.port();
    let (close, closing) = tokio::sync::watch::channel(false);
    let ui = Arc::new(Ui { client: ctx.client, auth: auth::Auth::new(port), flashes: actions::Flashes::default(), closing });
    let first = match explicit_namespace {
        Some(ns) => pages::env_href(ns),
        None => "/".to_string(),
    };
    let url = format!("http://127.0.0.1:{port}{first}?token={}", ui.auth.login_token());
    crate::outln!("{url}");
    crate::errln!(
        "serving the lifecycle-jobs web view on 127.0.0.1:{port} with your kubeconfig's credentials (Ctrl-C stops it)\n  the link above works once, in one browser; run the command again for a new one"
    );
    if !args.no_browser {
        open_browser(&url);
    }
    let stop = async move {
        shutdown().await;
        let _ = close.send(true);
    };
    axum::serve(listener, router(ui)).with_graceful_shutdown(stop).await.context("the web view's server stopped")?;
    Ok(())
}

fn router(ui: Shared) -> Router {
    Router::new()
        .route("/", get(read::environments_page))
        .route("/env/{ns}", get(read::environment_page))
        .route("/env/{ns}/jobs/{job}", get(read::job_page))
        .route("/env/{ns}/actions/{action}", post(actions::environment))
        .route("/env/{ns}/jobs/{job}/run", post(actions::force_run))
        .route("/live", get(live::stream))
        .route("/logs/{ns}/{run}", get(logs::stream))
        .route("/assets/{file}", get(assets::serve))
        .fallback(read::not_found)
        .layer(axum::middleware::from_fn_with_state(ui.clone(), auth::guard))
        .with_state(ui)
}

/// Opens the default browser on `url`, quietly: the URL is printed anyway.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        crate::errln!("  (could not start {opener}: open the link above in your browser)");
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
