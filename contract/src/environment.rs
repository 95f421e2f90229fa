//! THE reader of an environment Namespace, and the rules over what it reads.
//!
//! Every part that asks something of an environment's Namespace asks it here,
//! the same way: the controller (its plan's view of the namespace), admission
//! (may this namespace be deleted now?), the watch-fed index that gates pods,
//! and the kubectl plugin (is the transition I wait for over?). Read a
//! Namespace's metadata once with [`Environment::read`] (feature `k8s`) and ask
//! the result; never read the labels and annotations below by hand.
//!
//! What it reads (`docs/contract.md`, DESIGN.md "Names"):
//! - label `environment` (marks an environment; its value is the environment's
//!   name, empty meaning the namespace's) and label `project`;
//! - what people want ([`Wanted`]): label `state` ([`WantedState`]) and
//!   annotation `deploy-id`;
//! - what the controller took in ([`Observed`], annotation `observed`), the
//!   transition in flight ([`Transition`], annotation `transition`), and its
//!   `status` line, for people only (never decide from it);
//! - the settings `on-start-failure` and `rollout`.
//!
//! And the rules over them, pure and tested here:
//! - which event is due ([`decide`], [`Environment::due`]) and the record once
//!   it is taken in ([`taken`]);
//! - whether pods admitted now are gated ([`Environment::gates_pods`]).
//!
//! An unreadable annotation counts as absent (or as its default setting) and
//! is listed in [`Environment::problems`], in the words the controller logs.
//!
//! [`Transition`]: crate::transition::Transition

use serde::{Deserialize, Serialize};

use crate::Event;

/// The wanted state of an environment (label `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WantedState {
    Started,
    Stopped,
    Deleted,
}

impl WantedState {
    /// Reads the `state` label: absent or empty means started.
    pub fn parse(label: Option<&str>) -> Result<WantedState, String> {
        match label.map(str::trim).unwrap_or("") {
            "" | "started" => Ok(WantedState::Started),
            "stopped" => Ok(WantedState::Stopped),
            "deleted" => Ok(WantedState::Deleted),
            other => Err(format!("invalid state {other:?}: expected started, stopped or deleted")),
        }
    }

    /// The event that brings an environment into this state.
    pub fn event(self) -> Event {
        match self {
            WantedState::Started => Event::Start,
            WantedState::Stopped => Event::Stop,
            WantedState::Deleted => Event::Delete,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WantedState::Started => "started",
            WantedState::Stopped => "stopped",
            WantedState::Deleted => "deleted",
        }
    }
}

/// Annotation `observed`: the wanted state last taken in, and the number of the
/// last event occurrence of the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    pub seq: u64,
    /// `None` after a cancelled delete: the next wanted state, whatever it is, is an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<WantedState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
}

/// What people want: label `state` and annotation `deploy-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub state: WantedState,
    pub deploy_id: Option<String>,
}

/// What the wanted state implies, given what the controller took in last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing changed.
    Idle,
    /// An event occurrence to handle.
    Event(Event),
    /// Something changed that is no event (a `deploy-id` change while stopped or
    /// deleted): record it so that it is not seen again.
    Record,
}

/// The event implied by `wanted` after `observed`:
/// - first sight of an environment (or after a cancelled delete): the event of
///   the wanted state (start for `started`, stop for `stopped`, delete for `deleted`);
/// - `state` changed: the event of the new state;
/// - `deploy-id` changed while started: start (a redeploy). While stopped it is
///   only recorded: the next start runs the start jobs anyway.
pub fn decide(observed: Option<&Observed>, wanted: &Wanted) -> Decision {
    let Some(prev) = observed.and_then(|o| o.state) else {
        return Decision::Event(wanted.state.event());
    };
    if prev != wanted.state {
        return Decision::Event(wanted.state.event());
    }
    let deploy_changed = observed.and_then(|o| o.deploy_id.as_deref()) != wanted.deploy_id.as_deref();
    match (wanted.state, deploy_changed) {
        (_, false) => Decision::Idle,
        (WantedState::Started, true) => Decision::Event(Event::Start),
        (WantedState::Stopped | WantedState::Deleted, true) => Decision::Record,
    }
}

/// The `observed` record once `wanted` is taken in; `seq` is bumped when an
/// event occurrence starts.
pub fn taken(observed: Option<&Observed>, wanted: &Wanted, new_occurrence: bool) -> Observed {
    let seq = observed.map_or(0, |o| o.seq);
    Observed { seq: if new_occurrence { seq + 1 } else { seq }, state: Some(wanted.state), deploy_id: wanted.deploy_id.clone() }
}

#[cfg(feature = "k8s")]
pub use reader::Environment;

#[cfg(feature = "k8s")]
mod reader {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::{Decision, Observed, Wanted, WantedState, decide};
    use crate::Event;
    use crate::annotation::parse_json;
    use crate::names::{
        ANNOTATION_DEPLOY_ID, ANNOTATION_OBSERVED, ANNOTATION_ON_START_FAILURE, ANNOTATION_ROLLOUT, ANNOTATION_STATUS,
        ANNOTATION_TRANSITION, LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_STATE,
    };
    use crate::transition::{OnStartFailure, Rollout, Transition};

    /// An environment Namespace as read once from its metadata (see the module
    /// doc): every field typed, every unreadable annotation in `problems`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Environment {
        /// The Namespace's name.
        pub namespace: String,
        /// Label `environment` is present: everything else only matters then.
        pub is_environment: bool,
        /// The environment's name: label `environment`'s value, or the
        /// namespace's name when it is empty (or absent).
        pub name: String,
        /// Label `project`, when set and not empty.
        pub project: Option<String>,
        /// Label `state` and annotation `deploy-id`; an invalid `state` is the
        /// error that says so (the controller shows it as the status).
        pub wanted: Result<Wanted, String>,
        /// Annotation `observed` (an unreadable one counts as absent).
        pub observed: Option<Observed>,
        /// Annotation `transition` (an unreadable one counts as absent).
        pub transition: Option<Transition>,
        /// Annotation `status`: the controller's line for people, never a rule's input.
        pub status: Option<String>,
        /// Annotation `on-start-failure` (an unreadable one counts as `hold`).
        pub on_start_failure: OnStartFailure,
        /// Annotation `rollout` (an unreadable one counts as `on-start`).
        pub rollout: Rollout,
        /// The Namespace is being deleted (it has a deletion timestamp).
        pub deleting: bool,
        /// Unreadable annotations, in the words the controller logs; each counts
        /// as absent or as its default.
        pub problems: Vec<String>,
    }

    impl Environment {
        /// Reads a Namespace's metadata (from a full object, a metadata watch or
        /// an admission review alike).
        pub fn read(meta: &ObjectMeta) -> Environment {
            let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str);
            let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).map(String::as_str);
            let namespace = meta.name.clone().unwrap_or_default();
            let mut problems = Vec::new();
            let wanted = WantedState::parse(label(LABEL_STATE))
                .map(|state| Wanted { state, deploy_id: annotation(ANNOTATION_DEPLOY_ID).map(str::to_string) });
            let observed = parse_json::<Observed>(annotation(ANNOTATION_OBSERVED)).unwrap_or_else(|e| {
                problems.push(format!("annotation {ANNOTATION_OBSERVED} is unreadable ({e}); ignored"));
                None
            });
            let transition = parse_json::<Transition>(annotation(ANNOTATION_TRANSITION)).unwrap_or_else(|e| {
                problems.push(format!("annotation {ANNOTATION_TRANSITION} is unreadable ({e}); ignored"));
                None
            });
            let on_start_failure = OnStartFailure::parse(annotation(ANNOTATION_ON_START_FAILURE)).unwrap_or_else(|e| {
                problems.push(e);
                OnStartFailure::Hold
            });
            let rollout = Rollout::parse(annotation(ANNOTATION_ROLLOUT)).unwrap_or_else(|e| {
                problems.push(format!("{e}; on-start is used"));
                Rollout::OnStart
            });
            Environment {
                is_environment: label(LABEL_ENVIRONMENT).is_some(),
                name: label(LABEL_ENVIRONMENT).filter(|v| !v.is_empty()).map_or_else(|| namespace.clone(), str::to_string),
                project: label(LABEL_PROJECT).filter(|p| !p.is_empty()).map(str::to_string),
                namespace,
                wanted,
                observed,
                transition,
                status: annotation(ANNOTATION_STATUS).map(str::to_string),
                on_start_failure,
                rollout,
                deleting: meta.deletion_timestamp.is_some(),
                problems,
            }
        }

        /// Which event the wanted state implies now ([`decide`]); an invalid
        /// `state` implies none.
        pub fn due(&self) -> Decision {
            match &self.wanted {
                Ok(wanted) => decide(self.observed.as_ref(), wanted),
                Err(_) => Decision::Idle,
            }
        }

        /// Whether pods admitted now to this environment must wait behind the
        /// start-jobs scheduling gate: its start transition's runs are going (or
        /// failed and are held, unless `on-start-failure: release`), or a start is
        /// due that the controller has not taken yet (a new environment, a new
        /// `deploy-id`, `state` back to started). Never outside environments, nor
        /// in a namespace being deleted.
        pub fn gates_pods(&self) -> bool {
            if self.deleting || !self.is_environment {
                return false;
            }
            match &self.transition {
                Some(t) => t.gates_pods(self.on_start_failure),
                None => self.due() == Decision::Event(Event::Start),
            }
        }

        /// The controller's own delete of the namespace, once its delete runs
        /// are over (transition `delete` in phase `delete`).
        pub fn deleting_after_runs(&self) -> bool {
            self.transition.as_ref().is_some_and(Transition::deletes_namespace)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotation::parse_json;
    use crate::transition::Transition;

    fn wanted(state: WantedState, deploy: Option<&str>) -> Wanted {
        Wanted { state, deploy_id: deploy.map(str::to_string) }
    }
    fn observed(state: Option<WantedState>, deploy: Option<&str>) -> Observed {
        Observed { seq: 7, state, deploy_id: deploy.map(str::to_string) }
    }
    use WantedState::*;

    #[test]
    fn wanted_state_defaults_to_started() {
        assert_eq!(WantedState::parse(None), Ok(WantedState::Started));
        assert_eq!(WantedState::parse(Some("")), Ok(WantedState::Started));
        assert_eq!(WantedState::parse(Some("stopped")), Ok(WantedState::Stopped));
        assert_eq!(WantedState::parse(Some("deleted")), Ok(WantedState::Deleted));
        assert!(WantedState::parse(Some("paused")).unwrap_err().contains("paused"));
    }

    #[test]
    fn annotations_round_trip() {
        let o = Observed { seq: 3, state: Some(WantedState::Stopped), deploy_id: Some("v2".into()) };
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(json, r#"{"seq":3,"state":"stopped","deployId":"v2"}"#);
        assert_eq!(parse_json::<Observed>(Some(&json)).unwrap(), Some(o));
        let t = Transition::new(3, Event::Stop);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"seq":3,"event":"stop","phase":"runs"}"#);
        assert_eq!(parse_json::<Transition>(Some(&json)).unwrap(), Some(t));
        assert_eq!(parse_json::<Transition>(None).unwrap(), None);
        assert_eq!(parse_json::<Transition>(Some(" ")).unwrap(), None);
        assert!(parse_json::<Transition>(Some("{")).is_err());
    }

    #[test]
    fn first_sight_is_the_event_of_the_wanted_state() {
        assert_eq!(decide(None, &wanted(Started, None)), Decision::Event(Event::Start));
        assert_eq!(decide(None, &wanted(Stopped, Some("v1"))), Decision::Event(Event::Stop));
        assert_eq!(decide(None, &wanted(Deleted, None)), Decision::Event(Event::Delete));
        // After a cancelled delete the state is forgotten.
        assert_eq!(decide(Some(&observed(None, None)), &wanted(Started, None)), Decision::Event(Event::Start));
    }

    #[test]
    fn state_changes_are_events() {
        assert_eq!(decide(Some(&observed(Some(Started), None)), &wanted(Stopped, None)), Decision::Event(Event::Stop));
        assert_eq!(decide(Some(&observed(Some(Stopped), None)), &wanted(Started, None)), Decision::Event(Event::Start));
        assert_eq!(decide(Some(&observed(Some(Stopped), None)), &wanted(Deleted, None)), Decision::Event(Event::Delete));
        assert_eq!(decide(Some(&observed(Some(Deleted), None)), &wanted(Started, None)), Decision::Event(Event::Start));
    }

    #[test]
    fn redeploys() {
        let o = observed(Some(Started), Some("v1"));
        assert_eq!(decide(Some(&o), &wanted(Started, Some("v1"))), Decision::Idle);
        assert_eq!(decide(Some(&o), &wanted(Started, Some("v2"))), Decision::Event(Event::Start));
        assert_eq!(decide(Some(&o), &wanted(Started, None)), Decision::Event(Event::Start));
        let stopped = observed(Some(Stopped), Some("v1"));
        assert_eq!(decide(Some(&stopped), &wanted(Stopped, Some("v2"))), Decision::Record);
        assert_eq!(decide(Some(&stopped), &wanted(Stopped, Some("v1"))), Decision::Idle);
        // A start after a redeploy while stopped is one start.
        assert_eq!(decide(Some(&stopped), &wanted(Started, Some("v2"))), Decision::Event(Event::Start));
    }

    #[test]
    fn taking_in_bumps_seq_only_for_occurrences() {
        let o = observed(Some(Started), Some("v1"));
        let w = wanted(Stopped, Some("v1"));
        assert_eq!(taken(Some(&o), &w, true), Observed { seq: 8, state: Some(Stopped), deploy_id: Some("v1".into()) });
        assert_eq!(taken(Some(&o), &w, false).seq, 7);
        assert_eq!(taken(None, &w, true).seq, 1);
    }

    #[cfg(feature = "k8s")]
    mod reader {
        use std::collections::BTreeMap;

        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

        use super::super::*;
        use crate::names::{
            ANNOTATION_DEPLOY_ID, ANNOTATION_OBSERVED, ANNOTATION_ON_START_FAILURE, ANNOTATION_ROLLOUT, ANNOTATION_STATUS,
            ANNOTATION_TRANSITION, LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_STATE,
        };
        use crate::transition::{OnStartFailure, Phase, Rollout};
        use WantedState::*;

        fn ns(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
            let map =
                |p: &[(&str, &str)]| Some(p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>());
            ObjectMeta { name: Some("env1".into()), labels: map(labels), annotations: map(annotations), ..Default::default() }
        }
        fn gates_pods(meta: &ObjectMeta) -> bool {
            Environment::read(meta).gates_pods()
        }
        const ENV: (&str, &str) = (LABEL_ENVIRONMENT, "");

        #[test]
        fn reads_every_field() {
            let meta = ns(
                &[(LABEL_ENVIRONMENT, "review-42"), (LABEL_PROJECT, "shop"), (LABEL_STATE, " stopped ")],
                &[
                    (ANNOTATION_DEPLOY_ID, "v3"),
                    (ANNOTATION_OBSERVED, r#"{"seq":2,"state":"started","deployId":"v2"}"#),
                    (ANNOTATION_TRANSITION, r#"{"seq":3,"event":"stop","phase":"scale"}"#),
                    (ANNOTATION_STATUS, "stopping: scaling"),
                    (ANNOTATION_ON_START_FAILURE, "release"),
                    (ANNOTATION_ROLLOUT, "never"),
                ],
            );
            let env = Environment::read(&meta);
            assert!(env.is_environment && !env.deleting);
            assert_eq!((env.namespace.as_str(), env.name.as_str(), env.project.as_deref()), ("env1", "review-42", Some("shop")));
            assert_eq!(env.wanted, Ok(Wanted { state: Stopped, deploy_id: Some("v3".into()) }));
            assert_eq!(env.observed, Some(Observed { seq: 2, state: Some(Started), deploy_id: Some("v2".into()) }));
            assert_eq!(env.transition.as_ref().map(|t| (t.seq, t.event, t.phase)), Some((3, Event::Stop, Phase::Scale)));
            assert_eq!(env.status.as_deref(), Some("stopping: scaling"));
            assert_eq!((env.on_start_failure, env.rollout), (OnStartFailure::Release, Rollout::Never));
            assert_eq!(env.due(), Decision::Event(Event::Stop));
            assert!(env.problems.is_empty(), "{:?}", env.problems);

            let plain = Environment::read(&ns(&[ENV, (LABEL_PROJECT, "")], &[]));
            assert_eq!((plain.name.as_str(), plain.project), ("env1", None), "an empty label means the namespace's name");
            assert!(!Environment::read(&ns(&[], &[])).is_environment);
            let mut terminating = ns(&[ENV], &[]);
            terminating.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
            assert!(Environment::read(&terminating).deleting);
        }

        #[test]
        fn unreadable_annotations_count_as_absent_and_are_reported() {
            let env = Environment::read(&ns(
                &[ENV, (LABEL_STATE, "paused")],
                &[
                    (ANNOTATION_OBSERVED, "{"),
                    (ANNOTATION_TRANSITION, "[]"),
                    (ANNOTATION_ON_START_FAILURE, "go"),
                    (ANNOTATION_ROLLOUT, "always"),
                ],
            ));
            assert!(env.wanted.as_ref().unwrap_err().contains("paused"));
            assert_eq!(env.due(), Decision::Idle, "an invalid state implies no event");
            assert_eq!((env.observed, env.transition), (None, None));
            assert_eq!((env.on_start_failure, env.rollout), (OnStartFailure::Hold, Rollout::OnStart));
            let p = &env.problems;
            assert_eq!(p.len(), 4, "{p:?}");
            assert!(
                p[0].starts_with(&format!("annotation {ANNOTATION_OBSERVED} is unreadable (")) && p[0].ends_with("); ignored")
            );
            assert!(p[1].starts_with(&format!("annotation {ANNOTATION_TRANSITION} is unreadable (")));
            assert!(p[2].contains(ANNOTATION_ON_START_FAILURE) && p[2].ends_with("hold is used"), "{}", p[2]);
            assert!(p[3].contains(ANNOTATION_ROLLOUT) && p[3].ends_with("; on-start is used"), "{}", p[3]);
        }

        #[test]
        fn a_pending_or_running_start_gates() {
            // Not an environment.
            assert!(!gates_pods(&ns(&[], &[])));
            // New environment: its first start is due.
            assert!(gates_pods(&ns(&[ENV], &[])));
            // A new environment wanted stopped: no start.
            assert!(!gates_pods(&ns(&[ENV, (LABEL_STATE, "stopped")], &[])));
            let started = (ANNOTATION_OBSERVED, r#"{"seq":1,"state":"started","deployId":"v1"}"#);
            // Settled.
            assert!(!gates_pods(&ns(&[ENV], &[started, (ANNOTATION_DEPLOY_ID, "v1")])));
            // A redeploy not taken yet.
            assert!(gates_pods(&ns(&[ENV], &[started, (ANNOTATION_DEPLOY_ID, "v2")])));
            // A start's runs.
            let runs = (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"start","phase":"runs"}"#);
            assert!(gates_pods(&ns(&[ENV], &[started, runs])));
            // Its later phases too: the pods wait for its end (scaling, rollouts), then start once.
            let scale = (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"start","phase":"scale"}"#);
            assert!(gates_pods(&ns(&[ENV], &[started, scale])));
            // A stop.
            let stop = (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"stop","phase":"runs"}"#);
            assert!(!gates_pods(&ns(&[ENV, (LABEL_STATE, "stopped")], &[started, stop])));
            // A namespace being deleted never gates.
            let mut terminating = ns(&[ENV], &[]);
            terminating.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
            assert!(!gates_pods(&terminating));
        }

        #[test]
        fn a_held_failed_start_gates_unless_released() {
            let held =
                (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"start","phase":"runs","failed":{"stage":1,"jobs":["seed"]}}"#);
            assert!(gates_pods(&ns(&[ENV], &[held])));
            assert!(!gates_pods(&ns(&[ENV], &[held, (ANNOTATION_ON_START_FAILURE, "release")])));
            assert!(gates_pods(&ns(&[ENV], &[held, (ANNOTATION_ON_START_FAILURE, "typo")])), "unknown values hold");
        }

        #[test]
        fn only_the_delete_phase_is_the_controllers_own_delete() {
            let read = |t: &str| Environment::read(&ns(&[ENV, (LABEL_STATE, "deleted")], &[(ANNOTATION_TRANSITION, t)]));
            assert!(read(r#"{"seq":4,"event":"delete","phase":"delete"}"#).deleting_after_runs());
            assert!(!read(r#"{"seq":4,"event":"delete","phase":"runs"}"#).deleting_after_runs());
            assert!(!read(r#"{"seq":4,"event":"stop","phase":"scale"}"#).deleting_after_runs());
            assert!(!Environment::read(&ns(&[ENV], &[])).deleting_after_runs());
        }
    }
}
