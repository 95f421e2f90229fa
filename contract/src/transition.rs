//! The environment's transition in flight (namespace annotation `transition`),
//! its stages, and the namespace and workload settings that steer it
//! (`stage`, `on-start-failure`, `rollout`).
//!
//! The controller writes the annotation; the kubectl plugin and the admission
//! webhook read it. It lives here so that all three read the same type.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Event;
use crate::names::{ANNOTATION_ON_START_FAILURE, ANNOTATION_ROLLOUT, ANNOTATION_STAGE};

/// Steps of a transition, in order: the event's runs (stage by stage), then
/// scaling (stop and start), rolling the workloads whose outputs changed
/// (start), or deleting the namespace (delete). The controller now ends a
/// start or a stop in one step after its runs (scaling and rollouts
/// included), so it writes only `runs` and `delete`; `scale` and `rollout`
/// are still read, from a controller of an earlier version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Runs,
    Scale,
    Rollout,
    Delete,
}

/// Annotation `transition`: the event occurrence in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub seq: u64,
    #[serde(with = "event_serde")]
    pub event: Event,
    pub phase: Phase,
    /// Where the runs are (phase `runs`), for people and tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// A start whose runs failed, held (its later stages never run, gated pods
    /// stay gated) until a new event replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<StartFailure>,
}

impl Transition {
    pub fn new(seq: u64, event: Event) -> Transition {
        Transition { seq, event, phase: Phase::Runs, progress: None, failed: None }
    }

    /// The phase after this one, `None` when the transition is over.
    pub fn next(&self) -> Option<Transition> {
        let phase = match (self.phase, self.event) {
            (Phase::Runs, Event::Start | Event::Stop) => Phase::Scale,
            (Phase::Runs, Event::Delete) => Phase::Delete,
            (Phase::Scale, Event::Start) => Phase::Rollout,
            (Phase::Scale | Phase::Rollout | Phase::Delete, _) => return None,
        };
        Some(Transition { phase, progress: None, failed: None, ..self.clone() })
    }

    /// The occurrence id of this transition's runs (label `run`).
    pub fn occurrence(&self) -> String {
        self.seq.to_string()
    }

    /// The controller's own delete of the namespace: a delete transition whose
    /// runs are over (admission lets this delete pass).
    pub fn deletes_namespace(&self) -> bool {
        self.event == Event::Delete && self.phase == Phase::Delete
    }

    /// Pods admitted now must wait: a start, from its runs (also failed and
    /// held, unless the namespace says `release`) to its end. Its scaling and
    /// rollouts happen while its pods still wait, so that a workload whose
    /// pods have not started needs no roll: they start once, on the final
    /// values, when the transition ends.
    pub fn gates_pods(&self, on_failure: OnStartFailure) -> bool {
        self.event == Event::Start && !(self.failed.is_some() && on_failure == OnStartFailure::Release)
    }
}

/// The stage the runs of a transition are at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The stage's number (annotation `stage`).
    pub stage: i32,
    /// Its place among the transition's stages, from 1.
    pub index: usize,
    /// How many stages the transition has.
    pub stages: usize,
    /// Runs of this stage that ended, and how many it has.
    pub done: usize,
    pub total: usize,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage {} of {}, {}/{} jobs done", self.index, self.stages, self.done, self.total)
    }
}

/// Which start runs failed, and at which stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartFailure {
    pub stage: i32,
    /// Templates whose run failed.
    pub jobs: Vec<String>,
    /// The first failed run's reason (Job condition reason, never output values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Reads annotation `stage`: an integer (spaces around it ignored), 0 when absent.
pub fn parse_stage(value: Option<&str>) -> Result<i32, String> {
    let Some(v) = value else { return Ok(0) };
    v.trim().parse::<i32>().map_err(|_| {
        format!(
            "annotation {ANNOTATION_STAGE}={v:?} is not an integer: write a whole number such as \"1\", \"2\" or \"-1\" \
             (start runs go by ascending stage, stop and delete runs by descending stage; default 0)"
        )
    })
}

/// Namespace annotation `on-start-failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStartFailure {
    /// Gated pods stay gated after a failed start run.
    #[default]
    Hold,
    /// Gated pods are released after a failed start run.
    Release,
}

impl OnStartFailure {
    pub fn parse(value: Option<&str>) -> Result<OnStartFailure, String> {
        match value.map(str::trim).unwrap_or("") {
            "" | "hold" => Ok(OnStartFailure::Hold),
            "release" => Ok(OnStartFailure::Release),
            other => Err(format!("annotation {ANNOTATION_ON_START_FAILURE}={other:?}: expected hold or release; hold is used")),
        }
    }
}

/// Annotation `rollout` of a namespace or a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rollout {
    /// Roll workloads whose outputs changed when a start transition ends.
    #[default]
    OnStart,
    /// Also after any publish outside a transition.
    OnChange,
    /// Never roll.
    Never,
}

impl Rollout {
    pub fn parse(value: Option<&str>) -> Result<Rollout, String> {
        match value.map(str::trim).unwrap_or("") {
            "" | "on-start" => Ok(Rollout::OnStart),
            "on-change" => Ok(Rollout::OnChange),
            "never" => Ok(Rollout::Never),
            other => Err(format!("annotation {ANNOTATION_ROLLOUT}={other:?}: expected on-start, on-change or never")),
        }
    }
}

mod event_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Event;

    pub fn serialize<S: Serializer>(e: &Event, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(e.as_str())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_integers() {
        assert_eq!(parse_stage(None), Ok(0));
        assert_eq!(parse_stage(Some("2")), Ok(2));
        assert_eq!(parse_stage(Some(" -1 ")), Ok(-1));
        for bad in ["", "one", "1.5", "99999999999", "1,2"] {
            let e = parse_stage(Some(bad)).unwrap_err();
            assert!(e.contains(ANNOTATION_STAGE) && e.contains("integer"), "{bad}: {e}");
        }
    }

    #[test]
    fn transitions_walk_their_phases() {
        let start = Transition::new(1, Event::Start);
        let scale = start.next().unwrap();
        assert_eq!(scale.phase, Phase::Scale);
        assert_eq!(scale.next().unwrap().phase, Phase::Rollout);
        assert_eq!(scale.next().unwrap().next(), None);
        let stop = Transition::new(2, Event::Stop);
        assert_eq!(stop.next().unwrap().next(), None);
        assert_eq!(Transition::new(3, Event::Delete).next().unwrap().phase, Phase::Delete);
    }

    #[test]
    fn only_a_start_gates_until_its_end() {
        let mut t = Transition::new(1, Event::Start);
        assert!(t.gates_pods(OnStartFailure::Hold));
        t.failed = Some(StartFailure { stage: 1, jobs: vec!["seed".into()], reason: None });
        assert!(t.gates_pods(OnStartFailure::Hold));
        assert!(!t.gates_pods(OnStartFailure::Release));
        let scale = Transition::new(1, Event::Start).next().unwrap();
        assert!(scale.gates_pods(OnStartFailure::Hold), "scaling and rollouts happen before the release");
        assert!(scale.next().unwrap().gates_pods(OnStartFailure::Hold));
        assert!(!Transition::new(1, Event::Stop).gates_pods(OnStartFailure::Hold));
    }

    #[test]
    fn old_annotations_still_read() {
        let t: Transition = serde_json::from_str(r#"{"seq":3,"event":"stop","phase":"runs"}"#).unwrap();
        assert_eq!(t, Transition::new(3, Event::Stop));
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"seq":3,"event":"stop","phase":"runs"}"#);
    }

    #[test]
    fn settings_parse() {
        assert_eq!(OnStartFailure::parse(None), Ok(OnStartFailure::Hold));
        assert_eq!(OnStartFailure::parse(Some("release")), Ok(OnStartFailure::Release));
        assert!(OnStartFailure::parse(Some("go")).is_err());
        assert_eq!(Rollout::parse(Some("never")), Ok(Rollout::Never));
        assert_eq!(Rollout::parse(Some("on-change")), Ok(Rollout::OnChange));
        assert_eq!(Rollout::parse(None), Ok(Rollout::OnStart));
        assert!(Rollout::parse(Some("always")).is_err());
    }
}
