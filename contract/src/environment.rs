//! An environment's wanted state (label `state`) and what the controller took
//! in (annotation `observed`): written by people and the controller, read by
//! the controller and the kubectl plugin, which decides from these types when a
//! transition it waits for is over (never from the human `status` text).

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
