#!/usr/bin/env bash
# Builds the Go tools the checks use (helm, actionlint) from the Go module proxy
# and caches them by version outside the checkout, like
# tests/cluster/build-binaries.sh does for Kubernetes: a machine that has them
# skips this.
#
#   HELM_VERSION        helm.sh/helm/v4 release
#   ACTIONLINT_VERSION  github.com/rhysd/actionlint release
#   LJ_CACHE            cache root (default ~/.cache/lifecycle-jobs)
#
# Prints the directory that holds the binaries on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${LJ_CACHE:-$HOME/.cache/lifecycle-jobs}
bin="$cache/bin/tools-helm-v$HELM_VERSION-actionlint-v$ACTIONLINT_VERSION"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

if [ -x "$bin/helm" ] && [ -x "$bin/actionlint" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "build-tools: go is required (Go module proxy)" >&2; exit 1; }
mkdir -p "$bin"
log() { printf '[build-tools] %s\n' "$*" >&2; }

# A single main package through a wrapper go.mod with a `tool` directive.
build_wrapped() { # name module version package [ldflags]
  local name=$1 module=$2 version=$3 pkg=$4 ldextra=${5:-}
  local src="$cache/src/$name-v$version"
  mkdir -p "$src"
  printf 'module lifecycle-jobs.dev/tools/%s\n\ngo 1.25.0\n\nrequire %s v%s\n\ntool %s\n' \
    "$name" "$module" "$version" "$pkg" >"$src/go.mod"
  log "resolving $module v$version"
  (cd "$src" && go mod tidy >&2)
  log "building $name"
  # Build into a temporary name, then rename: a concurrent run never sees half a binary.
  (cd "$src" && go build -trimpath -ldflags "-s -w $ldextra" -o "$bin/.$name.tmp" "$pkg")
  mv -f "$bin/.$name.tmp" "$bin/$name"
}

[ -x "$bin/helm" ] || build_wrapped helm helm.sh/helm/v4 "$HELM_VERSION" helm.sh/helm/v4/cmd/helm \
  "-X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION"
[ -x "$bin/actionlint" ] || build_wrapped actionlint github.com/rhysd/actionlint "$ACTIONLINT_VERSION" \
  github.com/rhysd/actionlint/cmd/actionlint "-X github.com/rhysd/actionlint.version=v$ACTIONLINT_VERSION"

echo "$bin"
