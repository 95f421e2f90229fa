//! Which environment event the namespace's wanted state implies, given what the
//! controller took in last.

use lifecycle_contract::Event;

use super::model::{Observed, Wanted, WantedState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
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
pub(crate) fn decide(observed: Option<&Observed>, wanted: &Wanted) -> Decision {
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
pub(crate) fn taken(observed: Option<&Observed>, wanted: &Wanted, new_occurrence: bool) -> Observed {
    let seq = observed.map_or(0, |o| o.seq);
    Observed { seq: if new_occurrence { seq + 1 } else { seq }, state: Some(wanted.state), deploy_id: wanted.deploy_id.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(state: WantedState, deploy: Option<&str>) -> Wanted {
        Wanted { state, deploy_id: deploy.map(str::to_string) }
    }
    fn observed(state: Option<WantedState>, deploy: Option<&str>) -> Observed {
        Observed { seq: 7, state, deploy_id: deploy.map(str::to_string) }
    }
    use WantedState::*;

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
}
