//! A template's `last-runs` annotation: the controller's record of each
//! event's last run and of the last forced run, which it writes and reads for
//! its exactly-once bookkeeping, and which tools read for a run's result (the
//! result the controller decided, lost outputs included). Only the server
//! writes it (see `names::server_owned`); everyone reads it through
//! `lifecycle_job::last_runs` (feature `k8s`), where a record that does not
//! read counts as none, with a problem text.
//!
//! ```json
//! {"start":{"run":"seed-start-k2x9q4mz","occurrence":"3","result":"succeeded","time":"…"},
//!  "force":{"event":"stop","run":"seed-stop-p0q8","occurrence":"force-2","result":"failed",
//!           "reason":"OutputsNotPublished","message":"outputs not published: …","time":"…"}}
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Event;

/// Where a template keeps the record of one kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// Runs of environment events.
    Env(Event),
    /// Forced runs (annotation `force-run`), whatever their event.
    Force,
}

impl Slot {
    pub const ALL: [Slot; 4] = [Slot::Env(Event::Start), Slot::Env(Event::Stop), Slot::Env(Event::Delete), Slot::Force];
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Env(e) => f.write_str(e.as_str()),
            Slot::Force => f.write_str("force"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    /// A forced run claimed (annotation `force-run` cleared) whose Job may not exist yet.
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl RunResult {
    pub fn in_flight(self) -> bool {
        matches!(self, RunResult::Pending | RunResult::Running)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Pending => "pending",
            RunResult::Running => "running",
            RunResult::Succeeded => "succeeded",
            RunResult::Failed => "failed",
        }
    }
}

/// One run of a template, as recorded in its `last-runs` annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The event; written in the `force` slot only (the other slots are named after theirs).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_event_serde")]
    pub event: Option<Event>,
    /// Name of the run Job.
    pub run: String,
    /// The event occurrence: the environment's `seq`, or `force-<n>` for forced runs.
    pub occurrence: String,
    pub result: RunResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 time of the last change of this record.
    pub time: String,
}

impl RunRecord {
    /// The environment occurrence this record is for (0 for forced runs).
    pub fn env_seq(&self) -> u64 {
        self.occurrence.parse().unwrap_or(0)
    }
    /// `n` of a forced run's `force-<n>` occurrence (0 otherwise).
    pub fn force_seq(&self) -> u64 {
        self.occurrence.strip_prefix("force-").and_then(|n| n.parse().ok()).unwrap_or(0)
    }
}

/// Annotation `last-runs` of a template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRuns {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<RunRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<RunRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<RunRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<RunRecord>,
}

impl LastRuns {
    pub fn get(&self, slot: Slot) -> Option<&RunRecord> {
        match slot {
            Slot::Env(Event::Start) => self.start.as_ref(),
            Slot::Env(Event::Stop) => self.stop.as_ref(),
            Slot::Env(Event::Delete) => self.delete.as_ref(),
            Slot::Force => self.force.as_ref(),
        }
    }

    pub fn set(&mut self, slot: Slot, record: RunRecord) {
        let place = match slot {
            Slot::Env(Event::Start) => &mut self.start,
            Slot::Env(Event::Stop) => &mut self.stop,
            Slot::Env(Event::Delete) => &mut self.delete,
            Slot::Force => &mut self.force,
        };
        *place = Some(record);
    }

    /// A run of this template is pending or running.
    pub fn in_flight(&self) -> bool {
        Slot::ALL.iter().any(|s| self.get(*s).is_some_and(|r| r.result.in_flight()))
    }

    /// This template already ran `event` for environment occurrence `seq` (or a later one).
    pub fn ran_env(&self, event: Event, seq: u64) -> Option<&RunRecord> {
        self.get(Slot::Env(event)).filter(|r| r.env_seq() >= seq)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records always serialise")
    }
}

mod opt_event_serde {
    use crate::Event;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &Option<Event>, s: S) -> Result<S::Ok, S::Error> {
        match e {
            Some(e) => s.serialize_str(e.as_str()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Event>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
