//! Wiring: the TLS server (webhooks, outputs API), the admin server, the
//! certificate source, the job index and the controller.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use tokio::signal::unix::{SignalKind, signal};

use crate::admin::{self, Readiness};
use crate::config::{CertSource, Config};
use crate::index::JobIndex;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::tls::{CertFiles, CertStore};
use crate::{admission, certs, controller, outputs, tls};

/// Largest request body on the TLS port: an AdmissionReview carries the object
/// twice at most (object and oldObject); an output file is at most 1 MiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The TLS application: webhooks and the outputs API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(admission::router())
        .merge(outputs::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await.context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let certs = CertStore::with_expiry_gauge(metrics.certificate_expiry.clone());
    let ready = Readiness::default();
    let jobs = JobIndex::start(client.clone());

    let state = AppState { config: config.clone(), client, metrics: metrics.clone(), certs: certs.clone(), jobs: jobs.clone() };

    let mut tasks = tokio::task::JoinSet::new();
    match config.cert_source {
        CertSource::Files => {
            let files = CertFiles::in_dir(&config.tls_dir);
            let store = certs.clone();
            tasks.spawn(async move {
                tls::watch_files_forever(store, files).await;
                Ok::<_, anyhow::Error>(())
            });
        }
        CertSource::SelfManaged => {
            let s = state.clone();
            tasks.spawn(async move { certs::run(s).await.context("self-managed certificates") });
        }
    }
    if config.controller {
        let s = state.clone();
        tasks.spawn(async move { controller::run(s).await.context("environment controller") });
    }

    // Ready once the certificate is served and the job index has synced.
    {
        let (certs, jobs, ready) = (certs.clone(), jobs.clone(), ready.clone());
        tokio::spawn(async move {
            jobs.wait_until_ready().await;
            while !certs.is_loaded() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ready.set_ready();
            tracing::info!("ready");
        });
    }

    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin port {}", config.admin_listen))?;
    let admin_app = admin::router(metrics.clone(), ready.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin_app).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });

    let handle = axum_server::Handle::new();
    let tls = RustlsConfig::from_config(certs.server_config());
    let server = axum_server::bind_rustls(config.listen, tls).handle(handle.clone());
    tracing::info!(listen = %config.listen, admin = %config.admin_listen, "serving");

    let shutdown = {
        let handle = handle.clone();
        let ready = ready.clone();
        async move {
            let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            // Stop advertising readiness first so endpoints drop this replica,
            // then drain: in-flight admissions and uploads finish.
            tracing::info!("shutting down: draining connections");
            ready.set_not_ready();
            tokio::time::sleep(Duration::from_secs(3)).await;
            handle.graceful_shutdown(Some(Duration::from_secs(20)));
        }
    };
    tokio::spawn(shutdown);

    tokio::select! {
        r = server.serve(app(state).into_make_service()) => r.context("TLS server")?,
        Some(r) = tasks.join_next() => {
            r.context("background task panicked")??;
            anyhow::bail!("a background task ended unexpectedly");
        }
    }
    Ok(())
}
