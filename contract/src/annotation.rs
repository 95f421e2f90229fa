//! The controller's JSON annotations (`observed`, `transition` on a Namespace,
//! `last-runs` on a template): one parser, so that every reader treats an empty
//! or broken one the same way.

use serde::de::DeserializeOwned;

/// Reads one of the controller's JSON annotations: absent or blank is `None`;
/// a broken one is an error, which readers count as absent (and report).
pub fn parse_json<T: DeserializeOwned>(value: Option<&str>) -> Result<Option<T>, serde_json::Error> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => serde_json::from_str(v).map(Some),
    }
}
