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
# shellcheck disable=SC2034  # read by go-build.sh
LOG_TAG=build-tools
# shellcheck source=go-build.sh
source "$here/go-build.sh"

if [ -x "$bin/helm" ] && [ -x "$bin/actionlint" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "build-tools: go is required (Go module proxy)" >&2; exit 1; }
[ -x "$bin/helm" ] || build_wrapped helm helm.sh/helm/v4 "$HELM_VERSION" helm.sh/helm/v4/cmd/helm \
  "-X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION"
[ -x "$bin/actionlint" ] || build_wrapped actionlint github.com/rhysd/actionlint "$ACTIONLINT_VERSION" \
  github.com/rhysd/actionlint/cmd/actionlint "-X github.com/rhysd/actionlint.version=v$ACTIONLINT_VERSION"

echo "$bin"
