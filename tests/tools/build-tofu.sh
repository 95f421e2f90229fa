#!/usr/bin/env bash
# Builds OpenTofu's `tofu` from the Go module proxy and caches it by version
# outside the checkout, like build-tools.sh does for helm: a machine that has it
# skips this. It goes into the image of examples/opentofu-environment
# (tests/cluster/images.sh), whose lifecycle job runs Qovery's Terraform recipe.
#
#   TOFU_VERSION  github.com/opentofu/opentofu release (default below: the newest the proxy served)
#   LJ_CACHE      cache root (default ~/.cache/lifecycle-jobs)
#
# Unlike helm, tofu is built inside its own module (the proxy's copy, read-only
# in the module cache), not through a wrapper go.mod: its go.mod carries a
# `replace` (OpenTofu's fork of hcl) and `godebug` settings, which count only
# in the main module. So the binary is exactly what upstream's go.mod and go.sum
# describe. CGO_ENABLED=0 (go-build.sh): static, for an image with no libc.
#
# Prints the directory that holds the binary on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
TOFU_VERSION=${TOFU_VERSION:-1.12.6}

cache=${LJ_CACHE:-$HOME/.cache/lifecycle-jobs}
bin="$cache/bin/tofu-v$TOFU_VERSION"
# shellcheck disable=SC2034  # read by go-build.sh
LOG_TAG=build-tofu
# shellcheck source=go-build.sh
source "$here/go-build.sh"

if [ -x "$bin/tofu" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "build-tofu: go is required (Go module proxy)" >&2; exit 1; }
mkdir -p "$bin"
module=github.com/opentofu/opentofu
log "downloading $module v$TOFU_VERSION"
# Outside any module: `go mod download` of a path@version needs no go.mod.
src=$(cd / && go mod download -json "$module@v$TOFU_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] && [ -f "$src/go.mod" ] || { echo "build-tofu: no source for $module v$TOFU_VERSION" >&2; exit 1; }
log "building tofu (a few minutes on 2 cores)"
# -mod=readonly: the module cache is read-only, and upstream's go.sum is complete.
# version.dev=no: a release build (`tofu version` says 1.12.6, not 1.12.6-dev), as upstream's goreleaser sets it.
(cd "$src" && go build -mod=readonly -trimpath \
  -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
  -o "$bin/.tofu.tmp" ./cmd/tofu)
mv -f "$bin/.tofu.tmp" "$bin/tofu"
echo "$bin"
