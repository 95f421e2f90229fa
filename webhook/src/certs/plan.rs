//! When to renew and what comes next: pure decisions over [`Material`] and the
//! clock, and the steps that produce the next [`Material`].
//!
//! Serving certificate: renewed once two thirds of its lifetime have passed
//! (never valid beyond the CA that signs it).
//!
//! CA rotation, started once two thirds of the CA's lifetime have passed (or on
//! request), in three steps so that no client ever meets a certificate it does
//! not trust:
//! 1. **introduce**: a new CA is generated and added to the bundle (old + new);
//!    the old CA still signs. Every webhook configuration and every new agent
//!    pod gets the bundle.
//! 2. **promote**, `overlap` later: the new CA issues the serving certificate,
//!    served with the new CA cross-signed by the old one as an intermediate, so
//!    that an agent created before step 1 (trusting only the old CA) still
//!    verifies it. The bundle stays old + new.
//! 3. **retire**, `overlap` later: the old CA leaves the bundle.

use std::time::Duration;

use super::material::{Material, Phase, Trigger};
use super::pki::{self, CertInfo, PkiError};

/// Lifetimes and delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub cert_validity: Duration,
    pub ca_validity: Duration,
    /// Wait between rotation steps: long enough for the API server and every
    /// replica to pick up a new bundle.
    pub ca_overlap: Duration,
    pub dns_names: Vec<String>,
}

impl Settings {
    fn overlap_secs(&self) -> i64 {
        i64::try_from(self.ca_overlap.as_secs()).unwrap_or(i64::MAX / 4)
    }

    /// Problems with the settings worth a warning at start (none is fatal).
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.dns_names.is_empty() {
            w.push("no DNS names for the serving certificate".to_string());
        }
        // The rotation starts at 2/3 of the CA's life and needs two overlaps.
        if self.ca_validity.as_secs() / 3 <= 2 * self.ca_overlap.as_secs() {
            w.push(format!(
                "CA validity {} leaves less than twice the overlap {} for a rotation: the CA may expire mid-rotation",
                crate::runtime::duration::format_duration(self.ca_validity),
                crate::runtime::duration::format_duration(self.ca_overlap),
            ));
        }
        w
    }
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing until `until` (Unix seconds).
    Wait { until: i64 },
    /// A new serving certificate from the active CA.
    RenewLeaf { reason: String },
    /// Rotation step 1.
    Introduce { reason: String },
    /// Rotation step 2.
    Promote { reason: String },
    /// Rotation step 3.
    Retire,
    /// Record the start of the current phase (annotation lost).
    Restamp,
    /// Start over with a new CA (nothing stored is usable).
    Regenerate { reason: String },
    /// Only clear an unknown rotate annotation.
    ClearTrigger { value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub step: Step,
    /// The rotate annotation has been acted on: remove it in the same write.
    pub clear_trigger: bool,
}

impl Decision {
    fn new(step: Step) -> Self {
        Decision { step, clear_trigger: false }
    }
    fn clearing(step: Step) -> Self {
        Decision { step, clear_trigger: true }
    }
}

/// Why the served chain is not right, if it is not.
pub(crate) fn leaf_problem(m: &Material, s: &Settings, now: i64) -> Option<String> {
    let Some(leaf) = &m.leaf else {
        return Some("no usable serving certificate".into());
    };
    if !leaf.cert.valid_at(now) {
        return Some("the serving certificate is expired or not yet valid".into());
    }
    let mut have = leaf.cert.dns_names.clone();
    let mut want = s.dns_names.clone();
    have.sort();
    want.sort();
    if have != want {
        return Some("the DNS names changed".into());
    }
    if let Some(i) = m.intermediates.iter().find(|i| !i.valid_at(now)) {
        return Some(format!("the intermediate {} expired", i.fingerprint()));
    }
    if let Some(i) = m.intermediates.iter().find(|i| i.subject != m.active.cert.subject || i.spki != m.active.cert.spki) {
        return Some(format!("the intermediate {} does not certify the active CA", i.fingerprint()));
    }
    let name = s.dns_names.first().map(String::as_str).unwrap_or("lifecycle-webhook");
    if let Err(e) = pki::verify_chain(&m.chain(), std::slice::from_ref(&m.active.cert), name, now) {
        return Some(format!("the serving certificate does not verify against the active CA: {e}"));
    }
    None
}

/// The next step for `m` at `now`.
pub(crate) fn decide(m: &Material, trigger: &Trigger, s: &Settings, now: i64) -> Decision {
    let overlap = s.overlap_secs();
    let active = &m.active.cert;

    // The signing CA itself is unusable: no graceful path is left.
    if !active.valid_at(now) {
        if let Some(next) = &m.next
            && next.cert.valid_at(now)
        {
            return Decision::new(Step::Promote { reason: "the active CA expired before the rotation finished".into() });
        }
        return Decision::new(Step::Regenerate { reason: "the CA expired".into() });
    }

    if let Some(reason) = leaf_problem(m, s, now) {
        return Decision { step: Step::RenewLeaf { reason }, clear_trigger: *trigger == Trigger::Cert };
    }

    let mut wake: Vec<i64> = Vec::new();
    match m.phase() {
        phase @ (Phase::Introducing | Phase::Retiring) => {
            let Some(since) = m.phase_since else {
                return Decision::new(Step::Restamp);
            };
            // A clock jump back must not stall: never wait more than one overlap from now.
            let due = since.min(now).saturating_add(overlap);
            if now >= due {
                return Decision::new(match phase {
                    Phase::Introducing => Step::Promote { reason: "the new CA has been trusted for the overlap".into() },
                    _ => Step::Retire,
                });
            }
            wake.push(due);
        }
        Phase::Stable => {
            if *trigger == Trigger::Ca {
                return Decision::clearing(Step::Introduce { reason: "requested by the rotate annotation".into() });
            }
            let due = active.two_thirds();
            if now >= due {
                return Decision::new(Step::Introduce { reason: "two thirds of the CA's lifetime have passed".into() });
            }
            wake.push(due);
        }
    }

    let leaf = m.leaf.as_ref().expect("checked by leaf_problem");
    if *trigger == Trigger::Cert {
        return Decision::clearing(Step::RenewLeaf { reason: "requested by the rotate annotation".into() });
    }
    let due = leaf.cert.two_thirds();
    if now >= due {
        return Decision::new(Step::RenewLeaf { reason: "two thirds of its lifetime have passed".into() });
    }
    wake.push(due);
    wake.extend(m.intermediates.iter().map(|i| i.not_after));

    if let Trigger::Invalid(value) = trigger {
        return Decision::clearing(Step::ClearTrigger { value: value.clone() });
    }
    Decision::new(Step::Wait { until: wake.into_iter().min().unwrap_or(now + 3600).max(now + 1) })
}

/// A brand-new CA and serving certificate.
pub(crate) fn generate(s: &Settings, now: i64) -> Result<Material, PkiError> {
    let active = pki::new_ca(now, s.ca_validity)?;
    let leaf = pki::issue_leaf(&active, &s.dns_names, now, s.cert_validity)?;
    Ok(Material { active, next: None, previous: Vec::new(), leaf: Some(leaf), intermediates: Vec::new(), phase_since: Some(now) })
}

/// The material after `step` (unchanged for `Wait` and `ClearTrigger`).
pub(crate) fn execute(step: &Step, m: &Material, s: &Settings, now: i64) -> Result<Material, PkiError> {
    let mut out = m.clone();
    match step {
        Step::Wait { .. } | Step::ClearTrigger { .. } => {}
        Step::Restamp => out.phase_since = Some(now),
        Step::Regenerate { .. } => return generate(s, now),
        Step::RenewLeaf { .. } => {
            out.leaf = Some(pki::issue_leaf(&m.active, &s.dns_names, now, s.cert_validity)?);
            out.intermediates = bridges_still_useful(&m.intermediates, &m.active.cert, now);
        }
        Step::Introduce { .. } => {
            out.next = Some(pki::new_ca(now, s.ca_validity)?);
            out.phase_since = Some(now);
        }
        Step::Promote { .. } => {
            let Some(next) = &m.next else { return Ok(out) };
            let old = &m.active;
            out.active = next.clone();
            out.next = None;
            if old.cert.valid_at(now) {
                out.previous = vec![old.cert.clone()];
                out.intermediates = vec![pki::cross_sign(next, old, now)?];
            } else {
                out.previous = Vec::new();
                out.intermediates = Vec::new();
            }
            out.leaf = Some(pki::issue_leaf(next, &s.dns_names, now, s.cert_validity)?);
            out.phase_since = Some(now);
        }
        Step::Retire => {
            out.previous = Vec::new();
            out.phase_since = Some(now);
        }
    }
    Ok(out)
}

/// Cross-signed copies of the active CA that are still valid: kept after a
/// renewal for agents created before the last rotation.
fn bridges_still_useful(intermediates: &[CertInfo], active: &CertInfo, now: i64) -> Vec<CertInfo> {
    intermediates.iter().filter(|i| i.valid_at(now) && i.subject == active.subject && i.spki == active.spki).cloned().collect()
}

/// Invariants of any material about to be written: the served chain verifies
/// against the active CA alone and against the whole bundle.
pub(crate) fn check(m: &Material, s: &Settings, now: i64) -> Result<(), String> {
    let chain = m.chain();
    if chain.is_empty() {
        return Err("no serving certificate".into());
    }
    let bundle: Vec<CertInfo> = m.bundle().into_iter().cloned().collect();
    for name in &s.dns_names {
        pki::verify_chain(&chain, std::slice::from_ref(&m.active.cert), name, now)?;
        pki::verify_chain(&chain, &bundle, name, now)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::material::{self, ANNOTATION_ROTATE};
    use super::*;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_800_000_000;

    fn settings() -> Settings {
        Settings {
            cert_validity: Duration::from_secs(90 * DAY as u64),
            ca_validity: Duration::from_secs(365 * DAY as u64),
            ca_overlap: Duration::from_secs(600),
            dns_names: vec!["lifecycle-webhook.lifecycle-jobs-system.svc".into(), "lifecycle-webhook".into()],
        }
    }

    /// Through the Secret and back, as every replica sees it.
    fn round_trip(m: &Material) -> Material {
        let mut ann = BTreeMap::new();
        m.write_annotations(&mut ann);
        Material::parse(&m.to_data(), &ann).unwrap()
    }

    fn step_of(m: &Material, t: &Trigger, now: i64) -> Step {
        decide(m, t, &settings(), now).step
    }

    fn verifies(chain: &[CertInfo], roots: &[CertInfo], now: i64) -> bool {
        pki::verify_chain(chain, roots, "lifecycle-webhook.lifecycle-jobs-system.svc", now).is_ok()
    }

    #[test]
    fn fresh_material_is_stable_and_waits() {
        let s = settings();
        let m = generate(&s, T0).unwrap();
        check(&m, &s, T0).unwrap();
        assert_eq!(m.phase(), Phase::Stable);
        assert_eq!(round_trip(&m), m);
        // Next wake: the serving certificate's renewal, at 2/3 of 90 days.
        match step_of(&m, &Trigger::None, T0) {
            Step::Wait { until } => assert!((until - (T0 + 60 * DAY)).abs() < 400, "{until}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn leaf_renewed_at_two_thirds() {
        let s = settings();
        let m = generate(&s, T0).unwrap();
        let at = T0 + 61 * DAY;
        let d = decide(&m, &Trigger::None, &s, at);
        assert!(matches!(d.step, Step::RenewLeaf { .. }), "{d:?}");
        let renewed = execute(&d.step, &m, &s, at).unwrap();
        check(&renewed, &s, at).unwrap();
        assert_eq!(renewed.active, m.active);
        assert_ne!(renewed.leaf, m.leaf);
        assert!(matches!(step_of(&renewed, &Trigger::None, at), Step::Wait { .. }));
    }

    #[test]
    fn broken_or_foreign_leaf_is_replaced_at_once() {
        let s = settings();
        let m = generate(&s, T0).unwrap();
        let other = generate(&s, T0).unwrap();
        let mut wrong = m.clone();
        wrong.leaf = other.leaf.clone();
        assert!(matches!(step_of(&wrong, &Trigger::None, T0), Step::RenewLeaf { .. }));
        let mut none = m.clone();
        none.leaf = None;
        assert!(matches!(step_of(&none, &Trigger::None, T0), Step::RenewLeaf { .. }));
        let mut renamed = settings();
        renamed.dns_names.push("other.example".into());
        assert!(matches!(decide(&m, &Trigger::None, &renamed, T0).step, Step::RenewLeaf { .. }));
        // A tls.key that does not match tls.crt parses as no leaf.
        let mut data = m.to_data();
        data.insert(material::TLS_KEY.into(), other.leaf.as_ref().unwrap().key.0.clone().into_bytes());
        let parsed = Material::parse(&data, &BTreeMap::new()).unwrap();
        assert!(parsed.leaf.is_none());
    }

    #[test]
    fn unusable_secret_data_is_reported() {
        let s = settings();
        let m = generate(&s, T0).unwrap();
        let mut data = m.to_data();
        data.remove(material::CA_KEY);
        assert!(Material::parse(&data, &BTreeMap::new()).is_err());
        let mut data = m.to_data();
        data.insert(material::CA_CRT.into(), generate(&s, T0).unwrap().bundle_pem().into_bytes());
        assert!(matches!(Material::parse(&data, &BTreeMap::new()), Err(material::Unusable::NoActiveCa)));
    }

    #[test]
    fn expired_ca_is_regenerated() {
        let s = settings();
        let m = generate(&s, T0).unwrap();
        assert!(matches!(step_of(&m, &Trigger::None, T0 + 400 * DAY), Step::Regenerate { .. }));
    }

    /// The whole rotation, clock in hand: at every moment, every client that
    /// could exist verifies what every replica may be serving.
    #[test]
    fn ca_rotation_keeps_every_client_working() {
        let s = settings();
        let overlap = 600;
        let m0 = generate(&s, T0).unwrap();
        let old_ca = m0.active.cert.clone();
        // A long-running agent created now trusts only the old CA.
        let old_agent_roots: Vec<CertInfo> = m0.bundle().into_iter().cloned().collect();

        // Stable until 2/3 of the CA's life (renewing leaves on the way).
        let mut m = m0.clone();
        let mut now = T0;
        let start = old_ca.two_thirds();
        while now < start {
            match step_of(&m, &Trigger::None, now) {
                Step::Wait { until } => now = until.min(start),
                Step::RenewLeaf { .. } => {
                    m = round_trip(&execute(&Step::RenewLeaf { reason: String::new() }, &m, &s, now).unwrap());
                    check(&m, &s, now).unwrap();
                }
                other => panic!("unexpected {other:?} at {now}"),
            }
        }

        // Step 1.
        let step = step_of(&m, &Trigger::None, now);
        assert!(matches!(step, Step::Introduce { .. }), "{step:?}");
        let before = m.clone();
        let m1 = round_trip(&execute(&step, &m, &s, now).unwrap());
        check(&m1, &s, now).unwrap();
        assert_eq!(m1.phase(), Phase::Introducing);
        assert_eq!(m1.bundle().len(), 2);
        assert_eq!(m1.leaf, before.leaf, "the old CA still signs");
        let new_ca = m1.next.as_ref().unwrap().cert.clone();
        let both: Vec<CertInfo> = m1.bundle().into_iter().cloned().collect();
        // Everyone trusts what is served: the old leaf.
        assert!(verifies(&m1.chain(), &old_agent_roots, now));
        assert!(verifies(&m1.chain(), &both, now));
        // Waits for the overlap.
        assert_eq!(step_of(&m1, &Trigger::None, now + 10), Step::Wait { until: now + overlap });

        // Step 2.
        now += overlap;
        let step = step_of(&m1, &Trigger::None, now);
        assert!(matches!(step, Step::Promote { .. }), "{step:?}");
        let m2 = round_trip(&execute(&step, &m1, &s, now).unwrap());
        check(&m2, &s, now).unwrap();
        assert_eq!(m2.phase(), Phase::Retiring);
        assert_eq!(m2.active.cert, new_ca);
        assert_eq!(m2.previous, vec![old_ca.clone()]);
        assert_eq!(m2.intermediates.len(), 1);
        // A replica not yet updated still serves m1's chain; both verify for
        // the API server (bundle old+new) and for agents of either era.
        let new_agent_roots = vec![new_ca.clone()];
        for chain in [m1.chain(), m2.chain()] {
            assert!(verifies(&chain, &both, now));
        }
        assert!(verifies(&m2.chain(), &old_agent_roots, now), "bridge for agents created before step 1");
        assert!(verifies(&m2.chain(), &new_agent_roots, now));

        // Step 3.
        assert_eq!(step_of(&m2, &Trigger::None, now + 1), Step::Wait { until: now + overlap });
        now += overlap;
        let step = step_of(&m2, &Trigger::None, now);
        assert_eq!(step, Step::Retire);
        let m3 = round_trip(&execute(&step, &m2, &s, now).unwrap());
        check(&m3, &s, now).unwrap();
        assert_eq!(m3.phase(), Phase::Stable);
        assert_eq!(m3.bundle(), vec![&new_ca]);
        assert!(verifies(&m3.chain(), &new_agent_roots, now));
        assert!(verifies(&m3.chain(), &old_agent_roots, now), "the bridge stays while the old CA is valid");

        // A later renewal keeps the bridge while it is valid, drops it after.
        let later = now + 70 * DAY;
        let step = step_of(&m3, &Trigger::None, later);
        assert!(matches!(step, Step::RenewLeaf { .. }), "{step:?}");
        let m4 = execute(&step, &m3, &s, later).unwrap();
        assert_eq!(m4.intermediates, m3.intermediates);
        let after_old = old_ca.not_after + 1;
        let m5 = execute(&Step::RenewLeaf { reason: String::new() }, &m4, &s, after_old).unwrap();
        assert!(m5.intermediates.is_empty());
        check(&m5, &s, after_old).unwrap();
        // Next rotation is scheduled from the new CA.
        assert!(matches!(step_of(&m3, &Trigger::None, now + 1), Step::Wait { .. }));
    }

    #[test]
    fn forced_rotation_and_renewal() {
        let s = settings();
        let m = generate(&s, T0).unwrap();
        let d = decide(&m, &Trigger::Ca, &s, T0 + 5);
        assert!(matches!(d.step, Step::Introduce { .. }) && d.clear_trigger, "{d:?}");
        let d = decide(&m, &Trigger::Cert, &s, T0 + 5);
        assert!(matches!(d.step, Step::RenewLeaf { .. }) && d.clear_trigger, "{d:?}");
        // During a rotation a CA request waits (kept) for the next stable phase.
        let m1 = execute(&Step::Introduce { reason: String::new() }, &m, &s, T0 + 5).unwrap();
        let d = decide(&m1, &Trigger::Ca, &s, T0 + 6);
        assert!(matches!(d.step, Step::Wait { .. }) && !d.clear_trigger, "{d:?}");
        // Unknown values are cleared.
        let d = decide(&m, &Trigger::Invalid("soon".into()), &s, T0 + 5);
        assert_eq!(d, Decision { step: Step::ClearTrigger { value: "soon".into() }, clear_trigger: true });
    }

    #[test]
    fn trigger_values() {
        let ann = |v: &str| BTreeMap::from([(ANNOTATION_ROTATE.to_string(), v.to_string())]);
        assert_eq!(Trigger::from_annotations(&BTreeMap::new()), Trigger::None);
        assert_eq!(Trigger::from_annotations(&ann("now")), Trigger::Ca);
        assert_eq!(Trigger::from_annotations(&ann("ca")), Trigger::Ca);
        assert_eq!(Trigger::from_annotations(&ann("cert")), Trigger::Cert);
        assert_eq!(Trigger::from_annotations(&ann("x")), Trigger::Invalid("x".into()));
    }

    #[test]
    fn lost_phase_start_is_restamped_not_skipped() {
        let s = settings();
        let m = generate(&s, T0).unwrap();
        let mut m1 = execute(&Step::Introduce { reason: String::new() }, &m, &s, T0).unwrap();
        m1.phase_since = None;
        assert_eq!(step_of(&m1, &Trigger::None, T0 + 10_000), Step::Restamp);
    }

    #[test]
    fn ca_expiring_mid_rotation_promotes_at_once() {
        let s = settings();
        let m = generate(&s, T0).unwrap();
        let at = m.active.cert.not_after - 100;
        let m1 = execute(&Step::Introduce { reason: String::new() }, &m, &s, at).unwrap();
        let after = m.active.cert.not_after + 1;
        let step = step_of(&m1, &Trigger::None, after);
        assert!(matches!(step, Step::Promote { .. }), "{step:?}");
        let m2 = execute(&step, &m1, &s, after).unwrap();
        check(&m2, &s, after).unwrap();
        assert!(m2.previous.is_empty() && m2.intermediates.is_empty());
    }

    #[test]
    fn short_test_lifetimes_work() {
        let s = Settings {
            cert_validity: Duration::from_secs(60),
            ca_validity: Duration::from_secs(180),
            ca_overlap: Duration::from_secs(10),
            dns_names: settings().dns_names,
        };
        assert!(s.warnings().is_empty(), "{:?}", s.warnings());
        // Simulate 20 minutes: the material stays valid and verifiable at every second.
        let mut m = generate(&s, T0).unwrap();
        let mut rotations = 0;
        for now in T0..T0 + 1200 {
            loop {
                let d = decide(&m, &Trigger::None, &s, now);
                match d.step {
                    Step::Wait { until } => {
                        assert!(until > now);
                        break;
                    }
                    Step::Regenerate { reason } => panic!("regenerated at {now}: {reason}"),
                    step => {
                        if matches!(step, Step::Promote { .. }) {
                            rotations += 1;
                        }
                        m = round_trip(&execute(&step, &m, &s, now).unwrap());
                    }
                }
            }
            check(&m, &s, now).unwrap();
        }
        assert!(rotations >= 5, "{rotations}");
    }
}
