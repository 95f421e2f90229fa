//! Variable names that an output may not take as its alias: the ones the
//! system, the dynamic loader, language runtimes and Kubernetes itself give
//! meaning to. An output `PATH` still becomes `QOVERY_OUTPUT_JOB_<JOBID>_PATH`;
//! only the bare alias, which would land in every workload of the
//! environment, is withheld (with a Warning that says so).

/// Exact names.
const NAMES: &[&str] = &[
    // process environment and shells
    "PATH",
    "HOME",
    "HOSTNAME",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "OLDPWD",
    "TERM",
    "TMPDIR",
    "IFS",
    "ENV",
    "BASH_ENV",
    "CDPATH",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "TZ",
    "LANG",
    "LANGUAGE",
    // runtimes that load code named by a variable
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONINSPECT",
    "PERL5LIB",
    "PERL5OPT",
    "PERLLIB",
    "RUBYLIB",
    "RUBYOPT",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GCONV_PATH",
    "GODEBUG",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Prefixes: the dynamic loader (`LD_PRELOAD`, `LD_LIBRARY_PATH`, …), locale,
/// glibc's allocator, Kubernetes service links, and this product's own names.
const PREFIXES: &[&str] = &["LD_", "LC_", "MALLOC_", "GLIBC_", "KUBERNETES_", "QOVERY_OUTPUT_JOB_", "LIFECYCLE_"];

/// Whether `key` (an uppercased output key) gets no alias.
pub fn is_reserved_alias(key: &str) -> bool {
    NAMES.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The documented list, for messages and docs: exact names, then prefixes as `PREFIX*`.
pub fn reserved_aliases_doc() -> String {
    let mut parts: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    parts.extend(PREFIXES.iter().map(|p| format!("{p}*")));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_names_are_reserved() {
        for k in ["PATH", "LD_PRELOAD", "HOME", "HOSTNAME", "KUBERNETES_SERVICE_HOST", "QOVERY_OUTPUT_JOB_X_Y", "LC_ALL"] {
            assert!(is_reserved_alias(k), "{k}");
        }
        for k in ["POSTGRES_DB_HOST", "DATABASE_URL", "PATHS", "HOME_DIR", "LD"] {
            assert!(!is_reserved_alias(k), "{k}");
        }
        assert!(reserved_aliases_doc().contains("LD_*"));
    }
}
