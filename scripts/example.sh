#!/usr/bin/env bash
# The example environment (examples/preview-environment), as `make run` shows it.
#
#   scripts/example.sh apply [NAMESPACE]   apply it and wait until its start jobs ran and web is up
#   scripts/example.sh show  [NAMESPACE]   what happened: runs and results, outputs (masked), web's variables
#   scripts/example.sh next  [NAMESPACE]   the commands to try next, each with what to expect
#   scripts/example.sh all   [NAMESPACE]   the three above
#
# NAMESPACE defaults to preview-demo (the example's own); another name applies
# the same example into that namespace.
#
# Environment:
#   KUBECTL            kubectl to use (default: kubectl on PATH)
#   KUBECTL_LIFECYCLE  the plugin binary (default: kubectl-lifecycle on PATH, else target/release/)
#   EXAMPLE_VARIANT    local (busybox:local, for the local test cluster) or base (busybox from a
#                      registry); default: local when the context is the local cluster
#   EXAMPLE_TIMEOUT    seconds to wait in `apply` (default 180)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXAMPLE=$REPO/examples/preview-environment
DEFAULT_NS=preview-demo
TIMEOUT=${EXAMPLE_TIMEOUT:-180}

log() { printf 'example: %s\n' "$*" >&2; }
die() {
  printf 'example: error: %s\n' "$*" >&2
  exit 1
}

KUBECTL=${KUBECTL:-kubectl}
k() {
  command -v "$KUBECTL" >/dev/null 2>&1 || die "kubectl not found (set KUBECTL, or put kubectl on PATH)"
  "$KUBECTL" --request-timeout=30s "$@"
}

plugin_binary() {
  if [ -n "${KUBECTL_LIFECYCLE:-}" ]; then echo "$KUBECTL_LIFECYCLE"; return; fi
  if command -v kubectl-lifecycle >/dev/null 2>&1; then command -v kubectl-lifecycle; return; fi
  local built="${CARGO_TARGET_DIR:-$REPO/target}/release/kubectl-lifecycle"
  [ -x "$built" ] || die "kubectl-lifecycle not found: cargo build --release -p kubectl-lifecycle, or set KUBECTL_LIFECYCLE"
  echo "$built"
}
# `kubectl lifecycle ARGS`, run as the plugin binary (it need not be on PATH).
lifecycle() { "$(plugin_binary)" "$@"; }

# The example rendered for a namespace: the local or base variant, its
# namespace replaced (every object, the Namespace itself included).
render() { # namespace
  local ns=$1 variant=${EXAMPLE_VARIANT:-} dir out
  if [ -z "$variant" ]; then
    variant=base
    if [ "$(k config view --minify -o 'jsonpath={.clusters[0].cluster.server}' 2>/dev/null)" = "https://${LJ_NODE_IP:-10.79.0.1}:6443" ]; then
      variant=local
    fi
  fi
  case $variant in
    local) dir=$EXAMPLE/local ;;
    base) dir=$EXAMPLE ;;
    *) die "EXAMPLE_VARIANT=$variant: use local or base" ;;
  esac
  out=$(k kustomize "$dir") || die "kubectl kustomize $dir failed"
  # The namespace name only ever appears as a whole value in the example.
  printf '%s\n' "$out" | sed -E "s/^(( *)(name|namespace): )$DEFAULT_NS\$/\1$ns/"
}

# Lines "JOB CONDITIONS" for the start runs of the namespace, oldest first
# (the types of its true conditions).
start_runs() { # namespace
  k -n "$1" get jobs -l lifecycle-jobs.dev/event=start --sort-by=.metadata.creationTimestamp \
    -o 'jsonpath={range .items[*]}{.metadata.labels.lifecycle-jobs\.dev/job}{" "}{.status.conditions[?(@.status=="True")].type}{"\n"}{end}'
}

apply() { # namespace
  local ns=$1 deadline status last="" transition runs templates t job result done_all failed
  local -A latest
  log "applying examples/preview-environment into namespace $ns"
  render "$ns" | k apply -f - >&2
  templates=$(k -n "$ns" get jobs -o 'jsonpath={range .items[?(@.metadata.annotations.lifecycle-jobs\.dev/on)]}{.metadata.name}{"\n"}{end}')
  deadline=$((SECONDS + TIMEOUT))
  log "waiting for the start jobs (stage 1: postgres, stage 2: seed), up to ${TIMEOUT}s"
  while :; do
    status=$(k get namespace "$ns" -o 'jsonpath={.metadata.annotations.lifecycle-jobs\.dev/status}' 2>/dev/null) || status=""
    transition=$(k get namespace "$ns" -o 'jsonpath={.metadata.annotations.lifecycle-jobs\.dev/transition}' 2>/dev/null) || transition=""
    if [ "$status" != "$last" ]; then
      log "status: ${status:-<none yet>}"
      last=$status
    fi
    runs=$(start_runs "$ns" 2>/dev/null) || runs=""
    latest=()
    # A run's true conditions: "SuccessCriteriaMet Complete", "FailureTarget Failed", or none yet.
    while read -r job result; do
      [ -n "$job" ] || continue
      case " $result " in
        *" Complete "*) latest[$job]=Complete ;;
        *" Failed "*) latest[$job]=Failed ;;
        *) latest[$job]=running ;;
      esac
    done <<<"$runs"
    done_all=true
    failed=""
    for t in $templates; do
      case ${latest[$t]:-none} in
        Complete) ;;
        Failed) failed+=" $t" ;;
        *) done_all=false ;;
      esac
    done
    if [ -n "$failed" ]; then
      log "start run failed:$failed; its log:"
      for t in $failed; do lifecycle -n "$ns" logs "$t" --event start >&2 || true; done
      die "the example's start jobs failed in namespace $ns (see above)"
    fi
    # Done: every start job's latest run complete, the controller says started, nothing runs,
    # and no transition in flight (its end releases the gated pods).
    if $done_all && [ -z "$transition" ] && [[ $status == started* ]] && [[ $status != *running* ]]; then break; fi
    [ "$SECONDS" -lt "$deadline" ] || die "the start jobs did not end within ${TIMEOUT}s (status: ${status:-none}); see: kubectl lifecycle env status $ns"
    sleep 1
  done
  log "start jobs done; waiting for deployment/web"
  k -n "$ns" rollout status deployment/web --timeout="$((deadline > SECONDS ? deadline - SECONDS : 1))s" >&2 ||
    die "deployment/web did not roll out (kubectl -n $ns describe pods -l app=web)"
}

show() { # namespace
  local ns=$1
  echo
  echo "== The environment: its lifecycle jobs, their runs and results"
  echo "\$ kubectl lifecycle env status $ns"
  lifecycle env status "$ns"
  echo
  echo "== The outputs the jobs published (sensitive values masked)"
  echo "\$ kubectl lifecycle outputs $ns"
  lifecycle -n "$ns" outputs "$ns"
  echo
  echo "== What the web pod got as variables (it prints them at start and serves them on port 8080)"
  echo "\$ kubectl -n $ns logs deployment/web"
  k -n "$ns" logs deployment/web
}

# The next steps. Each is a command line starting with two spaces and
# "kubectl", then what to expect on the lines below it: the e2e test
# (tests/e2e/example.rs) runs them as printed.
next() { # namespace
  local ns=$1
  cat <<EOF

== Try next (each command, then what to expect)
  kubectl lifecycle run seed --event start -n $ns --wait --logs
      Force a run of the seed job: its log shows it connecting to DATABASE_HOST, and SEEDED_AT
      changes (kubectl lifecycle outputs seed -n $ns).
  kubectl lifecycle env stop $ns --wait
      postgres runs its stop command ("pausing database"), then web is scaled to 0.
  kubectl lifecycle env start $ns --wait
      postgres (stage 1) makes a new password, then seed (stage 2) runs, then web comes back
      with the new outputs (kubectl -n $ns logs deployment/web).
  kubectl lifecycle env redeploy $ns --wait
      A new deploy-id: the start jobs run again, stage by stage, and web is rolled to pick up
      the new password.
  kubectl -n $ns port-forward service/web 8080:80
      Then open http://localhost:8080: the page web serves, with the variables it got.
  kubectl delete namespace $ns
      Refused: the environment has a delete job, which must run first; the message says what
      to run instead (the next command). Nothing is deleted.
  kubectl lifecycle env delete $ns --wait
      postgres runs its delete command ("dropping database"), then the namespace goes.
EOF
}

main() {
  local cmd=${1:-} ns=${2:-$DEFAULT_NS}
  case $cmd in
    apply) apply "$ns" ;;
    show) show "$ns" ;;
    next) next "$ns" ;;
    all)
      apply "$ns"
      show "$ns"
      next "$ns"
      ;;
    -h | --help | "") sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command $cmd (see --help)" ;;
  esac
}

main "$@"
