//! The dashboard and the alerts shipped with the product query only what the
//! server exports, and the certificate expiry gauge follows the served
//! certificate.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::certs::pki;
use crate::runtime::tls::{CertPem, CertStore};

const DASHBOARD: &str = include_str!("../../../dashboards/lifecycle-jobs.json");
const CHART_DASHBOARD: &str = include_str!("../../../charts/lifecycle-jobs/files/dashboard.json");
const ALERTS: &str = include_str!("../../../charts/lifecycle-jobs/files/alerts.yaml");

/// Sample names of the /metrics text and the label names each one carries,
/// after one observation of every family (an empty family prints no sample).
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let m = Metrics::new();
    m.admission_requests.get_or_create(&AdmissionLabels { kind: "Pod", result: "patched" }).inc();
    m.admission_duration.get_or_create(&KindLabels { kind: "Pod" }).observe(0.001);
    m.http_requests.get_or_create(&ProtocolLabels { protocol: "HTTP/2", endpoint: "mutate" }).inc();
    m.outputs_published.inc();
    m.outputs_lost.inc();
    m.outputs_rejected.get_or_create(&ReasonLabels { reason: "invalid" }).inc();
    m.runs.get_or_create(&RunLabels { event: "start", result: "failed" }).inc();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in m.encode().lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..end].to_string()).or_default();
        if let Some(rest) = line[end..].strip_prefix('{') {
            for pair in rest[..rest.find('}').unwrap_or(0)].split(',') {
                if let Some((k, _)) = pair.split_once('=') {
                    labels.insert(k.to_string());
                }
            }
        }
    }
    out
}

/// Every `lifecycle_*` metric a query text names, with the label names of its
/// selector (`metric{a="x",b=~"y"}`), if any.
fn queried(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("lifecycle_") {
        let preceded_by_ident = rest[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        rest = &tail[end..];
        if preceded_by_ident {
            continue;
        }
        let mut labels = Vec::new();
        if let Some(sel) = rest.strip_prefix('{') {
            for matcher in sel[..sel.find('}').unwrap_or(0)].split(',') {
                let key = matcher.split(['=', '!']).next().unwrap_or("").trim();
                if !key.is_empty() {
                    labels.push(key.to_string());
                }
            }
        }
        out.push((name.to_string(), labels));
    }
    out
}

fn dashboard_exprs(json: &serde_json::Value) -> Vec<String> {
    let panels = json["panels"].as_array().expect("dashboard has panels");
    panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("every target has an expr").to_string())
        .collect()
}

fn assert_all_exported(what: &str, text: &str) {
    let exported = exported();
    let queried = queried(text);
    assert!(!queried.is_empty(), "{what} queries no lifecycle_ metric");
    for (name, labels) in queried {
        let Some(have) = exported.get(&name) else {
            panic!("{what} queries {name}, which the server does not export; it exports {:?}", exported.keys());
        };
        for l in labels {
            assert!(have.contains(&l), "{what} selects {name} by label {l}, which it does not carry ({have:?})");
        }
    }
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let json: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboards/lifecycle-jobs.json is JSON");
    assert_all_exported("dashboards/lifecycle-jobs.json", &dashboard_exprs(&json).join("\n"));
}

#[test]
fn alerts_query_only_exported_metrics() {
    assert_all_exported("charts/lifecycle-jobs/files/alerts.yaml", ALERTS);
    for alert in [
        "LifecycleJobsServerDown",
        "LifecycleJobsServerNotReady",
        "LifecycleJobsAdmissionErrors",
        "LifecycleJobsAdmissionSlow",
        "LifecycleJobsOutputsRejected",
        "LifecycleJobsOutputsLost",
        "LifecycleJobsRunsFailing",
        "LifecycleJobsCertificateExpiring",
    ] {
        assert!(ALERTS.contains(&format!("alert: {alert}\n")), "alert {alert} is missing");
    }
}

#[test]
fn chart_ships_the_repository_dashboard() {
    assert_eq!(
        CHART_DASHBOARD, DASHBOARD,
        "charts/lifecycle-jobs/files/dashboard.json must be a copy of dashboards/lifecycle-jobs.json"
    );
}

/// What Grafana needs to import a dashboard (the fields of its dashboard JSON
/// model that it refuses or mis-places without): a uid, a title, a schema
/// version it migrates from, panels with unique ids inside the 24-column grid,
/// and Prometheus targets with a refId and an expression.
#[test]
fn dashboard_is_a_grafana_dashboard() {
    let d: serde_json::Value = serde_json::from_str(DASHBOARD).expect("JSON");
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "uid: 1..40 characters");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "title");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion >= 36");
    assert!(d.get("id").is_none_or(serde_json::Value::is_null), "no id: Grafana assigns it on import");
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    assert!(vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource"), "a datasource variable");
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().expect("panel title");
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "panel ids are unique ({title})");
        assert!(
            ["stat", "timeseries", "gauge", "table", "state-timeline", "bargauge", "text"]
                .contains(&p["type"].as_str().unwrap_or("")),
            "panel {title}: a built-in panel type"
        );
        let g = &p["gridPos"];
        let (x, w, h) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap(), g["h"].as_u64().unwrap());
        assert!(g["y"].is_u64() && w > 0 && h > 0 && x + w <= 24, "panel {title}: gridPos inside 24 columns");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {title}: the datasource variable");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title}: targets");
        for t in targets {
            assert!(t["refId"].as_str().is_some_and(|r| !r.is_empty()), "panel {title}: refId");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "panel {title}: expr");
        }
    }
}

#[test]
fn queried_reads_names_and_selector_labels() {
    let q =
        queried(r#"sum by (kind) (rate(lifecycle_admission_requests_total{result="error", kind=~"Pod"}[5m])) / x_lifecycle_y"#);
    assert_eq!(q, vec![("lifecycle_admission_requests_total".to_string(), vec!["result".to_string(), "kind".to_string()])]);
}

#[test]
fn certificate_expiry_follows_the_served_certificate() {
    let metrics = Metrics::new();
    let store = CertStore::with_expiry_gauge(metrics.certificate_expiry.clone());
    let now = 1_800_000_000;
    let ca = pki::new_ca(now, std::time::Duration::from_secs(365 * 86400)).unwrap();
    let pem_of = |validity_days: u64| {
        let leaf =
            pki::issue_leaf(&ca, &["lifecycle-webhook".into()], now, std::time::Duration::from_secs(validity_days * 86400))
                .unwrap();
        let pem = CertPem { chain: leaf.cert.pem(), key: leaf.key.0.clone(), ca_bundle: ca.cert.pem() };
        (pem, leaf.cert.not_after)
    };
    let (first, first_expiry) = pem_of(30);
    store.set(first).unwrap();
    assert_eq!(metrics.certificate_expiry.get(), first_expiry);
    let (second, second_expiry) = pem_of(90);
    store.set(second).unwrap();
    assert_eq!(metrics.certificate_expiry.get(), second_expiry);
    assert!(second_expiry > first_expiry);
    let text = metrics.encode();
    assert!(text.contains(&format!("lifecycle_certificate_expiry_timestamp_seconds {second_expiry}")), "{text}");
}
