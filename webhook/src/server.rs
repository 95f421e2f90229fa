//! Wiring: the TLS server (webhooks, outputs API), the admin server, the
//! certificate source, the job index and the controller.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::signal::unix::{SignalKind, signal};

use crate::admin::{self, Readiness};
use crate::config::{CertSource, Config};
use crate::env_index::EnvIndex;
use crate::index::JobIndex;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::tls::{CertFiles, CertStore};
use crate::{admission, certs, controller, limits, listener, outputs, server_addr, tls};

/// The TLS application: webhooks and the outputs API, each behind its own
/// limits (`crate::limits`): a flood of one does not starve the other.
pub fn app(state: AppState) -> Router {
    let admission = admission::router()
        .layer(axum::extract::DefaultBodyLimit::max(limits::ADMISSION_MAX_BODY))
        .layer(axum::middleware::from_fn(limits::admission_layer));
    let outputs = outputs::router().layer(axum::middleware::from_fn(limits::outputs_layer));
    let by_protocol = axum::middleware::from_fn_with_state(state.metrics.clone(), listener::count_requests);
    Router::new().merge(admission).merge(outputs).layer(by_protocol).with_state(state)
}

pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = crate::kube_client::client().await.context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    // Read once: admission hands it to every agent without an API call.
    let addr = server_addr::resolve(&client, config.server_addr.as_deref(), &config.server_url, &config.namespace).await?;
    config.server_addr = Some(addr);
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let certs = CertStore::with_expiry_gauge(metrics.certificate_expiry.clone());
    let ready = Readiness::default();
    let jobs = JobIndex::start(client.clone());
    let envs = EnvIndex::start(client.clone());

    let client_for_losses = client.clone();
    let state = AppState {
        config: config.clone(),
        client,
        metrics: metrics.clone(),
        certs: certs.clone(),
        jobs: jobs.clone(),
        envs: envs.clone(),
    };

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
    // Every replica records outputs its agents could not publish; the
    // controller starts once the pods that ended while it was down are handled,
    // so that it counts their runs as failed.
    let losses = outputs::lost::start(client_for_losses, config.pod_name.clone(), metrics.clone());
    if config.controller {
        let s = state.clone();
        tasks.spawn(async move {
            // Bounded: a Job that cannot be patched must not keep the controller down.
            if tokio::time::timeout(Duration::from_secs(120), losses.wait_until_synced()).await.is_err() {
                tracing::warn!("lost outputs of earlier pods not all recorded yet; starting the controller anyway");
            }
            controller::run(s).await.context("environment controller")
        });
    }

    // Ready once the certificate is served and the job and environment indexes have synced.
    {
        let (certs, jobs, ready) = (certs.clone(), jobs.clone(), ready.clone());
        tokio::spawn(async move {
            jobs.wait_until_ready().await;
            envs.wait_until_ready().await;
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
    // HTTP/1.1 and HTTP/2 (ALPN), each with its limits: crate::listener.
    let server = listener::tls_server(axum_server::bind(config.listen), &certs).handle(handle.clone());
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
