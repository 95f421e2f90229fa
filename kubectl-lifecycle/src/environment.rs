//! How the plugin reads an environment Namespace: through the contract's one
//! reader ([`Environment::read`], the same as the controller's and
//! admission's), never its labels and annotations by hand. What it adds is for
//! people and for its waits, over the typed reading ([`EnvironmentExt`]): the
//! wanted state as a word, the redeploy request, what could not be read, and
//! whether the environment rests in a state. The `status` line is shown and
//! never decided on.

use k8s_openapi::api::core::v1::Namespace;
use lifecycle_contract::environment::{Observed, WantedState};
use lifecycle_contract::transition::Transition;

pub(crate) use lifecycle_contract::environment::Environment;

/// What an invalid `state` label is shown as (the controller's status says why).
pub(crate) const INVALID_STATE: &str = "<invalid>";

/// An environment Namespace as the contract reads it.
pub(crate) fn read(ns: &Namespace) -> Environment {
    Environment::read(&ns.metadata)
}

/// Whether a Namespace is an environment (label `environment`), as the contract reads it.
pub(crate) fn is_environment(ns: &Namespace) -> bool {
    read(ns).is_environment
}

/// What the plugin asks of an environment beyond the contract's fields.
pub(crate) trait EnvironmentExt {
    /// The wanted state, `None` when the `state` label is invalid.
    fn wanted_state(&self) -> Option<WantedState>;
    /// The wanted state for people: the controller's word, or [`INVALID_STATE`].
    fn wanted_text(&self) -> String;
    /// The redeploy request (annotation `deploy-id`), as the controller reads it.
    fn deploy_id(&self) -> Option<&str>;
    /// The environment rests in `state`: the controller took it in and has no transition in flight.
    fn settled(&self, state: WantedState) -> bool;
    /// What could not be read, in the controller's words: an invalid `state`, unreadable annotations.
    fn read_problems(&self) -> Vec<String>;
}

impl EnvironmentExt for Environment {
    fn wanted_state(&self) -> Option<WantedState> {
        self.wanted.as_ref().ok().map(|w| w.state)
    }

    fn wanted_text(&self) -> String {
        self.wanted_state().map_or(INVALID_STATE, WantedState::as_str).to_string()
    }

    fn deploy_id(&self) -> Option<&str> {
        self.wanted.as_ref().ok()?.deploy_id.as_deref()
    }

    fn settled(&self, state: WantedState) -> bool {
        settled(self.observed.as_ref(), self.transition.as_ref(), state)
    }

    fn read_problems(&self) -> Vec<String> {
        self.wanted.as_ref().err().into_iter().chain(&self.problems).cloned().collect()
    }
}

/// Whether an environment rests in `state` (see [`EnvironmentExt::settled`]).
pub(crate) fn settled(observed: Option<&Observed>, transition: Option<&Transition>, state: WantedState) -> bool {
    transition.is_none() && observed.is_some_and(|t| t.state == Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::meta;
    use lifecycle_contract::Event;
    use lifecycle_contract::names;

    fn namespace(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
        Namespace { metadata: meta("preview", labels, annotations), ..Default::default() }
    }

    #[test]
    fn reads_the_wanted_state_as_the_controller_does() {
        let env = namespace(&[(names::LABEL_ENVIRONMENT, "")], &[(names::ANNOTATION_DEPLOY_ID, "v1")]);
        assert_eq!(read(&env).wanted_state(), Some(WantedState::Started), "absent is started");
        assert_eq!(read(&env).deploy_id(), Some("v1"));
        assert!(is_environment(&env) && !is_environment(&namespace(&[], &[])));
        let stopped = namespace(&[(names::LABEL_ENVIRONMENT, "pr-1"), (names::LABEL_STATE, " stopped ")], &[]);
        assert_eq!(read(&stopped).wanted_text(), "stopped", "spaces are ignored");
        let odd = read(&namespace(&[(names::LABEL_STATE, "paused")], &[(names::ANNOTATION_OBSERVED, "{")]));
        assert_eq!((odd.wanted_state(), odd.wanted_text().as_str()), (None, INVALID_STATE));
        let problems = odd.read_problems();
        assert!(problems[0].contains("invalid state \"paused\"") && problems[1].contains("observed"), "{problems:?}");
    }

    #[test]
    fn settles_on_what_the_controller_took_in_with_nothing_in_flight() {
        let ns = namespace(&[(names::LABEL_STATE, "stopped")], &[(names::ANNOTATION_OBSERVED, r#"{"seq":4,"state":"stopped"}"#)]);
        let env = read(&ns);
        assert!(env.settled(WantedState::Stopped) && !env.settled(WantedState::Started));
        let moving = namespace(
            &[],
            &[
                (names::ANNOTATION_OBSERVED, r#"{"seq":5,"state":"started"}"#),
                (names::ANNOTATION_TRANSITION, r#"{"seq":5,"event":"start","phase":"runs"}"#),
            ],
        );
        let env = read(&moving);
        assert_eq!(env.transition, Some(Transition::new(5, Event::Start)));
        assert!(!env.settled(WantedState::Started), "a transition is in flight");
    }
}
