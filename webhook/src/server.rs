//! Wiring: the TLS server (webhooks, outputs API), the admin server, the
//! certificate source, the watches and the controller, all under one
//! supervisor ([`crate::runtime::supervisor`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;

use crate::runtime::admin::{self, Readiness};
use crate::runtime::config::{CertSource, Config};
use crate::runtime::metrics::Metrics;
use crate::runtime::supervisor::{self, Shutdown, Supervisor};
use crate::runtime::tls::{CertFiles, CertStore};
use crate::runtime::{limits, listener, server_addr, tls};
use crate::state::AppState;
use crate::watches::env_index::EnvIndex;
use crate::watches::job_index::JobIndex;
use crate::watches::jobs;
use crate::watches::namespaces;
use crate::{admission, certs, controller, outputs};

/// The TLS application: webhooks and the outputs API, each behind its own
/// limits (`crate::runtime::limits`): a flood of one does not starve the other.
pub fn app(state: AppState) -> Router {
    let admission = admission::router()
        .layer(axum::extract::DefaultBodyLimit::max(limits::ADMISSION_MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(state.bodies.clone(), limits::admission_layer));
    let outputs = outputs::router().layer(axum::middleware::from_fn(limits::outputs_layer));
    let by_protocol = axum::middleware::from_fn_with_state(state.metrics.clone(), listener::count_requests);
    Router::new().merge(admission).merge(outputs).layer(by_protocol).with_state(state)
}

/// Runs the server until SIGTERM: every long-lived task under one
/// [`Supervisor`] with one shutdown signal.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls_limits = connection_limits();
    let client =
        crate::runtime::kube_client::client().await.context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    // Read once: admission hands it to every agent without an API call.
    let addr = server_addr::resolve(&client, config.server_addr.as_deref(), &config.server_url, &config.namespace).await?;
    config.server_addr = Some(addr);
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let certs = CertStore::with_expiry_gauge(metrics.certificate_expiry.clone());
    let ready = Readiness::default();
    let mut tasks = Supervisor::new();

    let (state, watches) = start_watches(&mut tasks, &config, client, &metrics, &certs);
    start_certificates(&mut tasks, &state);
    start_controller(&mut tasks, &state, watches);
    start_readiness(&mut tasks, &state, &ready);

    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin port {}", config.admin_listen))?;
    let admin_listener = admin::AdminListener::new(admin_listener, &metrics);
    let admin_app = admin::router(metrics.clone(), ready.clone());
    // Serves until the process ends: probes and metrics during the drain too.
    tasks.spawn("admin server", async move { axum::serve(admin_listener, admin_app).await.context("admin server") });

    let gate = listener::ConnectionGate::new("tls", tls_limits, &metrics);
    let shutdown = tasks.shutdown();
    tasks.spawn_graceful("TLS server", async move { serve_tls(&config, &certs, gate, state, ready, shutdown).await });

    tasks.run(supervisor::terminate_signal()).await
}

/// The shared watches (`crate::watches`: one of Jobs and one of Namespaces,
/// each feeding its index, and the controller if this replica leads), and the
/// state every request handler shares.
fn start_watches(
    tasks: &mut Supervisor,
    config: &Arc<Config>,
    client: kube::Client,
    metrics: &Arc<Metrics>,
    certs: &CertStore,
) -> (AppState, controller::Watches) {
    let (jobs, job_index) = JobIndex::new();
    let (job_watch, watching_jobs) = jobs::start(client.clone(), job_index);
    tasks.spawn("job watch", supervisor::forever("the job watch", watching_jobs));
    let (envs, env_index) = EnvIndex::new();
    let (namespace_watch, watching_namespaces) = namespaces::start(client.clone(), env_index);
    tasks.spawn("namespace watch", supervisor::forever("the namespace watch", watching_namespaces));
    let state = AppState::new(config.clone(), client, metrics.clone(), certs.clone(), jobs, envs);
    (state, controller::Watches { jobs: job_watch, namespaces: namespace_watch })
}

/// The serving certificate: from files (cert-manager) or the server's own CA.
fn start_certificates(tasks: &mut Supervisor, state: &AppState) {
    match state.config.cert_source {
        CertSource::Files => {
            let files = CertFiles::in_dir(&state.config.tls_dir);
            tasks.spawn(
                "certificate files",
                supervisor::forever("the certificate file watch", tls::watch_files_forever(state.certs.clone(), files)),
            );
        }
        CertSource::SelfManaged => {
            let s = state.clone();
            tasks.spawn("certificates", async move {
                certs::run(s).await.context("self-managed certificates")?;
                anyhow::bail!("self-managed certificates: the watches ended")
            });
        }
    }
}

/// The lost-outputs watch on every replica, and the controller when enabled
/// (it runs only while this replica leads).
fn start_controller(tasks: &mut Supervisor, state: &AppState, watches: controller::Watches) {
    // Every replica records outputs its agents could not publish; the
    // controller starts once the pods that ended while it was down are handled,
    // so that it counts their runs as failed.
    let (losses, watching_losses) =
        outputs::lost::start(state.client.clone(), state.config.pod_name.clone(), state.metrics.clone());
    tasks.spawn("lost outputs", supervisor::forever("the lost outputs watch", watching_losses));
    if !state.config.controller {
        return;
    }
    let (s, shutdown) = (state.clone(), tasks.shutdown());
    tasks.spawn_graceful("controller", async move {
        // Bounded: a Job that cannot be patched must not keep the controller down.
        tokio::select! {
            synced = tokio::time::timeout(Duration::from_secs(120), losses.wait_until_synced()) => if synced.is_err() {
                tracing::warn!("lost outputs of earlier pods not all recorded yet; starting the controller anyway");
            },
            () = shutdown.requested() => return Ok(()),
        }
        controller::run(s, watches, shutdown).await.context("environment controller")
    });
}

/// Ready once the certificate is served and the job and environment indexes have synced.
fn start_readiness(tasks: &mut Supervisor, state: &AppState, ready: &Readiness) {
    let (jobs, envs, certs, ready) = (state.jobs.clone(), state.envs.clone(), state.certs.clone(), ready.clone());
    tasks.spawn("readiness", async move {
        jobs.wait_until_ready().await;
        envs.wait_until_ready().await;
        while !certs.is_loaded() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ready.set_ready();
        tracing::info!("ready");
        Ok(())
    });
}

/// The TLS server until shutdown, then a drain: readiness goes first so that
/// endpoints drop this replica, and HTTP/1.x answers close their connection
/// so that clients reconnect elsewhere ([`listener::ConnectionGate::drain`]);
/// then the graceful shutdown closes idle connections and lets in-flight
/// admissions and uploads finish.
async fn serve_tls(
    config: &Config,
    certs: &CertStore,
    gate: listener::ConnectionGate,
    state: AppState,
    ready: Readiness,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let draining = gate.clone();
    // HTTP/1.1 and HTTP/2 (ALPN), each with its limits: crate::runtime::listener.
    let server = listener::tls_server_with(axum_server::bind(config.listen), certs, gate).handle(handle.clone());
    tracing::info!(listen = %config.listen, admin = %config.admin_listen, "serving");

    let drain = async move {
        shutdown.requested().await;
        tracing::info!("shutting down: draining connections");
        ready.set_not_ready();
        draining.drain();
        tokio::time::sleep(Duration::from_secs(3)).await;
        handle.graceful_shutdown(Some(Duration::from_secs(20)));
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = server.serve(app(state).into_make_service()) => r.context("TLS server"),
        () = drain => unreachable!("the drain waits for the server"),
    }
}

/// The TLS port's connection limits, within the open-file limit (raised to
/// its hard value first): a connection refused by a cap costs one client,
/// accept failing for want of descriptors would cost them all.
fn connection_limits() -> listener::ConnLimits {
    let wanted = listener::ConnLimits::TLS;
    let Some(fds) = listener::raise_open_files() else {
        tracing::warn!(connections = wanted.total, "open files limit unknown: connection caps as configured");
        return wanted;
    };
    let spare = fds.saturating_sub(limits::FD_RESERVE + limits::ADMIN_MAX_CONNECTIONS as u64);
    let l = wanted.within_open_files(spare);
    if l.total < wanted.total {
        tracing::warn!(
            open_files = fds,
            connections = l.total,
            wanted = wanted.total,
            "open files limit below the connection cap: cap lowered"
        );
    } else {
        tracing::info!(open_files = fds, connections = l.total, per_source = l.per_source, "connection limits");
    }
    l
}
