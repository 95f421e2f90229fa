//! What the plugin reads of an environment Namespace, typed, in one place: its
//! name and project, its wanted state (label `state`), what the controller took
//! in (annotation `observed`) and the transition in flight (`transition`), the
//! redeploy request (`deploy-id`), and the human `status` line, which is shown
//! and never decided on. Every command reads an environment through
//! [`Environment::read`]; the rules of reading (an absent `state` is started,
//! spaces ignored) are the contract's.

use k8s_openapi::api::core::v1::Namespace;
use lifecycle_contract::environment::{Observed, WantedState};
use lifecycle_contract::names;
use lifecycle_contract::transition::Transition;

/// An environment Namespace as the plugin reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Environment {
    pub(crate) namespace: String,
    /// The `environment` label's value, else the namespace's name.
    pub(crate) name: String,
    pub(crate) project: Option<String>,
    /// The wanted state as the controller reads it; an unreadable label, as written.
    pub(crate) wanted: Result<WantedState, String>,
    /// What the controller took in; `None` until it did (or when unreadable).
    pub(crate) observed: Option<Observed>,
    /// The transition in flight, if any (an unreadable one counts as none).
    pub(crate) transition: Option<Transition>,
    pub(crate) deploy_id: Option<String>,
    /// The controller's status line, for people only.
    pub(crate) status: Option<String>,
    pub(crate) created: Option<jiff::Timestamp>,
    /// The namespace is being deleted.
    pub(crate) terminating: bool,
}

impl Environment {
    pub(crate) fn read(ns: &Namespace) -> Environment {
        let label = |k: &str| ns.metadata.labels.as_ref()?.get(k).map(String::as_str);
        let annotation = |k: &str| ns.metadata.annotations.as_ref()?.get(k).map(String::as_str);
        let namespace = ns.metadata.name.clone().unwrap_or_default();
        let state = label(names::LABEL_STATE);
        Environment {
            name: label(names::LABEL_ENVIRONMENT).filter(|v| !v.is_empty()).map_or_else(|| namespace.clone(), String::from),
            namespace,
            project: label(names::LABEL_PROJECT).filter(|p| !p.is_empty()).map(Into::into),
            wanted: WantedState::parse(state).map_err(|_| state.unwrap_or_default().to_string()),
            observed: annotation(names::ANNOTATION_OBSERVED).and_then(|v| serde_json::from_str(v).ok()),
            transition: annotation(names::ANNOTATION_TRANSITION).and_then(|v| serde_json::from_str(v).ok()),
            deploy_id: annotation(names::ANNOTATION_DEPLOY_ID).map(Into::into),
            status: annotation(names::ANNOTATION_STATUS).map(Into::into),
            created: ns.metadata.creation_timestamp.as_ref().map(|t| t.0),
            terminating: ns.metadata.deletion_timestamp.is_some(),
        }
    }

    /// The wanted state for people: the controller's word, or an unreadable label as written.
    pub(crate) fn wanted_text(&self) -> String {
        match &self.wanted {
            Ok(s) => s.as_str().to_string(),
            Err(written) => written.clone(),
        }
    }

    /// The environment rests in `state`: the controller took that state in and
    /// has no transition in flight.
    pub(crate) fn settled(&self, state: WantedState) -> bool {
        settled(self.observed.as_ref(), self.transition.as_ref(), state)
    }
}

/// Whether an environment rests in `state` (see [`Environment::settled`]).
pub(crate) fn settled(observed: Option<&Observed>, transition: Option<&Transition>, state: WantedState) -> bool {
    transition.is_none() && observed.is_some_and(|t| t.state == Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::meta;
    use lifecycle_contract::Event;

    fn namespace(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
        Namespace { metadata: meta("preview", labels, annotations), ..Default::default() }
    }

    #[test]
    fn reads_the_wanted_state_as_the_controller_does() {
        let env = namespace(&[(names::LABEL_ENVIRONMENT, "")], &[]);
        assert_eq!(Environment::read(&env).wanted, Ok(WantedState::Started), "absent is started");
        assert_eq!(Environment::read(&env).name, "preview");
        let stopped = namespace(&[(names::LABEL_ENVIRONMENT, "pr-1"), (names::LABEL_STATE, " stopped ")], &[]);
        assert_eq!(Environment::read(&stopped).wanted, Ok(WantedState::Stopped), "spaces are ignored");
        assert_eq!(Environment::read(&stopped).name, "pr-1");
        let odd = Environment::read(&namespace(&[(names::LABEL_STATE, "paused")], &[]));
        assert_eq!(odd.wanted, Err("paused".into()));
        assert_eq!(odd.wanted_text(), "paused", "shown as written");
    }

    #[test]
    fn reads_what_the_controller_took_in_and_settles_on_it() {
        let ns = namespace(
            &[(names::LABEL_STATE, "stopped")],
            &[(names::ANNOTATION_OBSERVED, r#"{"seq":4,"state":"stopped"}"#), (names::ANNOTATION_STATUS, "stopped")],
        );
        let env = Environment::read(&ns);
        assert_eq!(env.observed.as_ref().map(|o| o.seq), Some(4));
        assert!(env.settled(WantedState::Stopped) && !env.settled(WantedState::Started));
        assert_eq!(env.status.as_deref(), Some("stopped"));
        let moving = namespace(
            &[],
            &[
                (names::ANNOTATION_OBSERVED, r#"{"seq":5,"state":"started"}"#),
                (names::ANNOTATION_TRANSITION, r#"{"seq":5,"event":"start","phase":"runs"}"#),
            ],
        );
        let env = Environment::read(&moving);
        assert_eq!(env.transition, Some(Transition::new(5, Event::Start)));
        assert!(!env.settled(WantedState::Started), "a transition is in flight");
        let unreadable = namespace(&[], &[(names::ANNOTATION_OBSERVED, "{"), (names::ANNOTATION_TRANSITION, "x")]);
        let env = Environment::read(&unreadable);
        assert!(env.observed.is_none() && env.transition.is_none());
    }
}
