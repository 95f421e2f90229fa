//! Scale bookkeeping of Deployments and StatefulSets: a stop scales them to
//! zero and remembers their replicas in an annotation; a start scales back the
//! ones that carry it and removes it. Each change is one merge patch of one
//! object (annotation and replicas together), so a controller that stops half
//! way through resumes without losing a count.

use serde_json::{Value, json};

use super::keys::ANNOTATION_REPLICAS_BEFORE_STOP;

/// The patch that stops a workload with `replicas` (`None`: the default, 1) and
/// the annotation `remembered`, or `None` when there is nothing to do.
pub(crate) fn stop_patch(replicas: Option<i32>, remembered: Option<&str>) -> Option<Value> {
    let replicas = replicas.unwrap_or(1);
    match remembered {
        // Already recorded by an earlier (interrupted) stop: keep the first count,
        // make sure it is down.
        Some(_) if replicas == 0 => None,
        Some(_) => Some(json!({"spec": {"replicas": 0}})),
        // Nothing runs: nothing to bring back either.
        None if replicas == 0 => None,
        None => Some(json!({
            "metadata": {"annotations": {ANNOTATION_REPLICAS_BEFORE_STOP: replicas.to_string()}},
            "spec": {"replicas": 0},
        })),
    }
}

/// What a start does to a workload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StartPatch {
    /// Nothing: the workload was not stopped by the controller.
    None,
    /// Scale back and forget the count.
    Patch(Value),
    /// The annotation is unreadable: drop it, leave replicas alone, say so.
    Invalid { patch: Value, value: String },
}

pub(crate) fn start_patch(remembered: Option<&str>) -> StartPatch {
    let Some(value) = remembered else {
        return StartPatch::None;
    };
    match value.trim().parse::<i32>() {
        Ok(n) if n >= 0 => StartPatch::Patch(json!({
            "metadata": {"annotations": {ANNOTATION_REPLICAS_BEFORE_STOP: null}},
            "spec": {"replicas": n},
        })),
        _ => StartPatch::Invalid {
            patch: json!({"metadata": {"annotations": {ANNOTATION_REPLICAS_BEFORE_STOP: null}}}),
            value: value.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_remembers_and_zeroes() {
        assert_eq!(
            stop_patch(Some(3), None),
            Some(json!({"metadata": {"annotations": {ANNOTATION_REPLICAS_BEFORE_STOP: "3"}}, "spec": {"replicas": 0}}))
        );
        assert_eq!(
            stop_patch(None, None),
            Some(json!({"metadata": {"annotations": {ANNOTATION_REPLICAS_BEFORE_STOP: "1"}}, "spec": {"replicas": 0}}))
        );
        assert_eq!(stop_patch(Some(0), None), None);
    }

    #[test]
    fn stop_is_idempotent() {
        // Interrupted after the patch: nothing more.
        assert_eq!(stop_patch(Some(0), Some("3")), None);
        // Scaled up by someone after the stop: down again, the first count kept.
        assert_eq!(stop_patch(Some(2), Some("3")), Some(json!({"spec": {"replicas": 0}})));
    }

    #[test]
    fn start_scales_back_what_stop_remembered() {
        assert_eq!(start_patch(None), StartPatch::None);
        assert_eq!(
            start_patch(Some("3")),
            StartPatch::Patch(
                json!({"metadata": {"annotations": {ANNOTATION_REPLICAS_BEFORE_STOP: null}}, "spec": {"replicas": 3}})
            )
        );
        assert!(matches!(start_patch(Some("three")), StartPatch::Invalid { .. }));
        assert!(matches!(start_patch(Some("-1")), StartPatch::Invalid { .. }));
    }
}
