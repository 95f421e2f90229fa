//! A variable as the plugin shows it, whatever command lists it, and the one
//! rule that hides sensitive values. Each command adds where the variable
//! comes from (`outputs`: the job that published it; `env vars`: the injected
//! object and its scope).

use serde::Serialize;

/// What a masked value is shown as: the contract's mask, as everywhere.
pub use lifecycle_contract::output::MASK;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Variable<O> {
    pub name: String,
    /// The value, or [`MASK`] when `masked`.
    pub value: String,
    pub sensitive: bool,
    pub masked: bool,
    /// Where it comes from; its fields stand beside the ones above in JSON and YAML.
    #[serde(flatten)]
    pub origin: O,
}

impl<O> Variable<O> {
    /// An unmasked variable.
    pub fn new(name: impl Into<String>, value: impl Into<String>, sensitive: bool, origin: O) -> Self {
        Variable { name: name.into(), value: value.into(), sensitive, masked: false, origin }
    }
}

/// Replaces every sensitive value with [`MASK`].
pub fn mask<O>(vars: &mut [Variable<O>]) {
    for v in vars.iter_mut().filter(|v| v.sensitive) {
        v.value = MASK.to_string();
        v.masked = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Origin {
        job_id: &'static str,
    }

    #[test]
    fn masking_hides_sensitive_values_only_and_the_origin_stands_beside() {
        let mut vars =
            [Variable::new("A", "1", false, Origin { job_id: "J" }), Variable::new("B", "s3cret", true, Origin { job_id: "J" })];
        mask(&mut vars);
        assert_eq!((vars[0].value.as_str(), vars[0].masked), ("1", false));
        assert_eq!((vars[1].value.as_str(), vars[1].masked), (MASK, true));
        assert_eq!(
            serde_json::to_string(&vars[1]).unwrap(),
            r#"{"name":"B","value":"******","sensitive":true,"masked":true,"jobId":"J"}"#
        );
    }
}
