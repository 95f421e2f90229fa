# shellcheck shell=bash disable=SC2154  # cache and bin are the caller's
# Sourced, not run: building Go programs from the Go module proxy into a cache
# outside the checkout, versioned so that a machine that has them skips the
# build. Shared by tests/cluster/build-binaries.sh (the local cluster's
# components) and tests/tools/build-tools.sh (helm, actionlint).
#
# The caller sets, before sourcing:
#   cache    cache root (the sources go to $cache/src/<name>-v<version>)
#   bin      directory the binaries go to
#   LOG_TAG  prefix of the progress lines (on stderr)
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }

# build_wrapped NAME MODULE VERSION PACKAGE [LDFLAGS]: one main package, built
# through a wrapper go.mod whose `tool` directive pins the module's version,
# into $bin/NAME (under a temporary name first, then renamed: a concurrent run
# never sees half a binary).
build_wrapped() {
  local name=$1 module=$2 version=$3 pkg=$4 ldextra=${5:-}
  local src="$cache/src/$name-v$version"
  mkdir -p "$src" "$bin"
  printf 'module lifecycle-jobs.dev/build/%s\n\ngo 1.25.0\n\nrequire %s v%s\n\ntool %s\n' \
    "$name" "$module" "$version" "$pkg" >"$src/go.mod"
  log "resolving $module v$version"
  (cd "$src" && go mod tidy >&2)
  log "building $name"
  (cd "$src" && go build -trimpath -ldflags "-s -w $ldextra" -o "$bin/.$name.tmp" "$pkg")
  mv -f "$bin/.$name.tmp" "$bin/$name"
}
