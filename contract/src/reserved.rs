//! Variable names that an output may not take as its alias: the ones the
//! system, the dynamic loader, language runtimes, their package managers and
//! Kubernetes itself give meaning to. An output `HTTPS_PROXY` still becomes
//! `QOVERY_OUTPUT_JOB_<JOBID>_HTTPS_PROXY`; only the bare alias, which would
//! land in every workload of the environment, is withheld (with a Warning that
//! says so). A team that wants one of them bare says so in its own workload:
//! `env: [{name: HTTPS_PROXY, valueFrom: {configMapKeyRef: {name:
//! lifecycle-outputs, key: QOVERY_OUTPUT_JOB_<JOBID>_HTTPS_PROXY}}}]`
//! (docs/variables.md).
//!
//! Why each is here: a variable is reserved when a common runtime reads it to
//! load code, to choose where its traffic goes, or to choose what it trusts,
//! so that one job's output could run code in, or redirect or intercept the
//! traffic of, every other workload. The list says which runtime reads what.
//! Matching is on the uppercased key and is case-insensitive anyway: output
//! keys are uppercased before they get here, and `http_proxy` (which curl reads
//! only in lowercase for http://) must never slip through another path.

/// Exact names, grouped by who reads them.
const NAMES: &[&str] = &[
    // --- process environment and POSIX shells (sh, bash, dash, busybox) ---
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
    "IFS",       // word splitting of every unquoted expansion
    "ENV",       // sh/dash/busybox: file sourced by interactive shells (and `sh -i`)
    "BASH_ENV",  // bash: file sourced by every non-interactive bash (scripts, `bash -c`)
    "CDPATH",    // where `cd` looks
    "PS4",       // expanded (command substitution included) under `set -x`
    "SHELLOPTS", // bash: options forced on (xtrace…)
    "BASHOPTS",
    "PROMPT_COMMAND",
    "TZ",
    "TZDIR",
    "LANG",
    "LANGUAGE",
    "NLSPATH", // message catalogs loaded by libc
    // --- glibc's resolver: where names resolve to ---
    "HOSTALIASES", // a file of host aliases: redirects any lookup
    "LOCALDOMAIN", // search domains
    "RES_OPTIONS", // resolver options (ndots, …)
    // --- proxies: curl, wget, Python requests/urllib/httpx, Go net/http, Node (undici with
    //     NODE_USE_ENV_PROXY, axios, got), Ruby net/http, Java (through launch scripts), git, pip, npm ---
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY", // emptied or `*`, it turns a proxy off; set, it routes around an intended one
    "FTP_PROXY",
    "GRPC_PROXY", // gRPC core (C++, Python, Ruby)
    "SOCKS_PROXY",
    "SOCKS5_PROXY",
    // --- what TLS trusts ---
    "SSL_CERT_FILE",      // OpenSSL (Python ssl, Ruby, curl on OpenSSL), Go crypto/x509, rustls-native-certs
    "SSL_CERT_DIR",       // same
    "SSLKEYLOGFILE",      // curl, Python, Firefox/NSS, Go (some builds): write the TLS session keys there
    "OPENSSL_CONF",       // OpenSSL: config file, which may load engines and providers (code)
    "OPENSSL_ENGINES",    // OpenSSL: where engines load from
    "OPENSSL_MODULES",    // OpenSSL 3: where providers load from
    "REQUESTS_CA_BUNDLE", // Python requests
    "CURL_CA_BUNDLE",     // curl, Python requests
    "HTTPLIB2_CA_CERTS",  // Python httplib2
    "AWS_CA_BUNDLE",      // AWS CLI and SDKs
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", // gRPC core
    "NODE_EXTRA_CA_CERTS", // Node.js: extra trusted CAs
    "NODE_TLS_REJECT_UNAUTHORIZED", // Node.js: `0` turns certificate checks off
    "PYTHONHTTPSVERIFY",  // Python (some builds): `0` turns certificate checks off
    // --- runtimes that load code or options named by a variable ---
    "NODE_OPTIONS", // Node.js: --require, --import, --inspect…
    "NODE_PATH",    // Node.js: module search path
    "NODE_USE_ENV_PROXY",
    "NODE_REPL_EXTERNAL_MODULE",
    "PYTHONPATH",       // Python: module search path
    "PYTHONHOME",       // Python: the standard library itself
    "PYTHONSTARTUP",    // Python: file run by interactive interpreters
    "PYTHONINSPECT",    // Python: interactive after the script
    "PYTHONWARNINGS",   // Python: a warnings filter imports the category's module (code)
    "PYTHONBREAKPOINT", // Python: a callable imported at breakpoint()
    "PYTHONUSERBASE",   // Python: user site-packages (and its .pth files) come from there
    "PYTHONEXECUTABLE",
    "PERL5LIB", // Perl: module search path
    "PERL5OPT", // Perl: -M options (code)
    "PERLLIB",
    "PERL5DB", // Perl: debugger code
    "RUBYLIB", // Ruby: load path
    "RUBYOPT", // Ruby: -r options (code)
    "GEM_HOME",
    "GEM_PATH",
    "BUNDLE_GEMFILE",
    "PHPRC",             // PHP: php.ini (auto_prepend_file: code)
    "PHP_INI_SCAN_DIR",  // PHP: more ini files
    "LUA_INIT",          // Lua: code run at start
    "LUA_PATH",          // Lua: module search path
    "LUA_CPATH",         // Lua: native module search path
    "JAVA_TOOL_OPTIONS", // every JVM: -javaagent, system properties (proxies, trust stores)
    "_JAVA_OPTIONS",     // HotSpot: same, taking precedence
    "JDK_JAVA_OPTIONS",  // the `java` launcher (JDK 9+)
    "JAVA_OPTS",         // launch scripts (Tomcat, Spring Boot's, Gradle's, many images)
    "CATALINA_OPTS",     // Tomcat
    "MAVEN_OPTS",
    "GRADLE_OPTS",
    "CLASSPATH",              // javac/java: classes loaded
    "DOTNET_STARTUP_HOOKS",   // .NET: assemblies run before Main
    "DOTNET_ADDITIONAL_DEPS", // .NET: more dependencies loaded
    "DOTNET_SHARED_STORE",
    "GCONV_PATH", // glibc iconv: modules loaded (the classic setuid escape)
    "GODEBUG",    // Go runtime settings (x509 checks among them)
    "GOFLAGS",    // the go command: flags of every build
    "GOPROXY",    // the go command: where modules come from
    "GONOSUMDB",
    "GONOSUMCHECK",
    "GOINSECURE",
    "GOPRIVATE",
    "GOSUMDB",
    "GOTOOLCHAIN", // the go command: downloads and runs another toolchain
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    // --- SSH and clients that pick a server or credentials from the environment ---
    "SSH_ASKPASS",   // ssh: a program run for passwords
    "SSH_AUTH_SOCK", // ssh: the agent answering for keys
    "KUBECONFIG",    // kubectl and client-go: which cluster, which credentials
    "DOCKER_HOST",   // docker: which daemon
    "CURL_HOME",     // curl: where .curlrc is read (proxies, options)
    "WGETRC",        // wget: its configuration file
    "EDITOR",        // run by git, kubectl edit, crontab…
    "VISUAL",
    "PAGER",
    "LESSOPEN", // less: a program run on every file
    "LESSCLOSE",
    "BROWSER",
];

/// Prefixes: the dynamic loader (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`…),
/// locale, glibc's allocator and tunables, git (`GIT_SSH_COMMAND`,
/// `GIT_CONFIG_*`, `GIT_PROXY_COMMAND`, `GIT_ASKPASS`, `GIT_EXEC_PATH`,
/// `GIT_SSL_*`: every one of them runs code or changes trust), npm's and
/// yarn's configuration (`NPM_CONFIG_REGISTRY`, `NPM_CONFIG_PROXY`, …), the
/// .NET and CLR profilers and settings (`CORECLR_PROFILER_PATH`, `COR_PROFILER`,
/// `COMPLUS_*`…), AWS
/// endpoints (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`…: where the SDKs send
/// requests signed with the pod's credentials), Kubernetes service links, and
/// this product's own names.
const PREFIXES: &[&str] = &[
    "LD_",
    "LC_",
    "MALLOC_",
    "GLIBC_",
    "GIT_",
    "NPM_CONFIG_",
    "YARN_",
    "CORECLR_",
    "COR_",
    "COMPLUS_",
    "AWS_ENDPOINT_URL",
    "KUBERNETES_",
    "QOVERY_OUTPUT_JOB_",
    "LIFECYCLE_",
];

/// Whether `key` (an output key, uppercased by the contract) gets no alias.
/// Compared without regard to ASCII case: a variable's name is
/// case-sensitive, but some runtimes read both spellings (`https_proxy`).
pub fn is_reserved_alias(key: &str) -> bool {
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(key))
        || PREFIXES.iter().any(|p| key.len() >= p.len() && key.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
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

    /// Issue 19: outputs that redirect traffic or change what TLS trusts.
    #[test]
    fn proxies_and_trust_are_reserved() {
        for k in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "NODE_EXTRA_CA_CERTS",
            "NODE_TLS_REJECT_UNAUTHORIZED",
            "AWS_CA_BUNDLE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "SSLKEYLOGFILE",
            "HOSTALIASES",
        ] {
            assert!(is_reserved_alias(k), "{k}");
        }
        // Either spelling: curl reads only `http_proxy` for http:// URLs.
        for k in ["http_proxy", "https_proxy", "Https_Proxy", "no_proxy", "git_ssh_command"] {
            assert!(is_reserved_alias(k), "{k}");
        }
    }

    #[test]
    fn code_loading_runtime_variables_are_reserved() {
        for k in [
            "NODE_OPTIONS",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "JAVA_OPTS",
            "DOTNET_STARTUP_HOOKS",
            "CORECLR_PROFILER_PATH",
            "PYTHONWARNINGS",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PYTHONHOME",
            "PERL5OPT",
            "PERL5LIB",
            "RUBYOPT",
            "RUBYLIB",
            "GIT_SSH_COMMAND",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
            "GIT_CONFIG_VALUE_0",
            "GIT_PROXY_COMMAND",
            "GCONV_PATH",
            "BASH_ENV",
            "ENV",
            "IFS",
            "SHELLOPTS",
            "PS4",
            "NPM_CONFIG_REGISTRY",
            "PIP_INDEX_URL",
            "GOPROXY",
            "OPENSSL_CONF",
            "KUBECONFIG",
            "LD_AUDIT",
        ] {
            assert!(is_reserved_alias(k), "{k}");
        }
    }

    /// Names a job commonly publishes for its workloads stay aliases: the list
    /// is of names runtimes read, not of everything that looks alike.
    #[test]
    fn ordinary_outputs_keep_their_alias() {
        for k in [
            "DATABASE_URL",
            "DB_HOST",
            "REDIS_URL",
            "API_ENDPOINT",
            "PROXY_URL",
            "HTTP_PORT",
            "NODE_ENV",
            "PYTHON_VERSION",
            "GITHUB_SHA",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "S3_BUCKET",
            "CA_FINGERPRINT",
            "ENVIRONMENT",
            "USERNAME",
            "JAVA_VERSION",
            "COLOR",
            "CORE_COUNT",
            "YARN",
        ] {
            assert!(!is_reserved_alias(k), "{k}");
        }
    }

    /// The list is the documented one: every entry is uppercase and listed once.
    #[test]
    fn entries_are_uppercase_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for n in NAMES.iter().chain(PREFIXES) {
            assert!(seen.insert(n.to_ascii_uppercase()), "{n} twice");
        }
        for n in NAMES {
            assert!(n.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'), "{n}");
        }
        let doc = reserved_aliases_doc();
        for n in ["HTTPS_PROXY", "NODE_EXTRA_CA_CERTS", "GIT_*", "AWS_ENDPOINT_URL*"] {
            assert!(doc.contains(n), "{n}");
        }
    }
}
