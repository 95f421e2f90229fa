#!/usr/bin/env bash
# Builds container images without a Docker engine or a registry: each image is a
# tar in `docker save` layout (manifest.json, a config JSON whose rootfs.diff_ids
# lists the sha256 of each layer tar, the layer tars), which
# `ctr images import` takes and the cluster then runs exactly as if pulled.
# Byte-reproducible: fixed file order, times, owners and JSON; no timestamps.
#
#   images.sh             release-build the webhook and the agent (static), then
#                         build every image into target/images/; with
#                         LJ_OPENTOFU_IMAGE=1 also the OpenTofu example's (tofu
#                         is built once and cached: tests/tools/build-tofu.sh;
#                         the e2e suite sets it)
#   images.sh --cluster   only the images the cluster itself needs (busybox,
#                         pause, CoreDNS); up.sh runs this
#   images.sh --no-build  all images, from the release binaries already built
#
# Images (name as a pod spec writes it -> file):
#   lifecycle-jobs/lifecycle-webhook:dev  target/images/lifecycle-webhook.tar
#   lifecycle-jobs/lifecycle-agent:dev    target/images/lifecycle-agent.tar
#   busybox:local                         target/images/busybox.tar
#   lifecycle-jobs/pause:local            target/images/pause.tar
#   lifecycle-jobs/coredns:local          target/images/coredns.tar
#   lifecycle-jobs/opentofu-job:local     target/images/opentofu-job.tar (examples/opentofu-environment)
set -euo pipefail
LOG_PREFIX=images
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

mode=all
case "${1:-}" in
  "") ;;
  --cluster) mode=cluster ;;
  --no-build) mode=no-build ;;
  *) die "usage: $0 [--cluster|--no-build]" ;;
esac

RUST_TARGET=x86_64-unknown-linux-gnu
PRODUCT_BINS=(lifecycle-webhook lifecycle-agent)
PRODUCT_TAG=dev
OPENTOFU_IMAGE=lifecycle-jobs/opentofu-job:local

# GNU tar flags that make archives depend on content only. Owners are taken
# from the (explicitly chowned) staging tree, numerically.
TAR=(tar --sort=name --mtime=@0 --numeric-owner --format=gnu --no-acls --no-xattrs --no-selinux)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# make_image OUT.tar REPO:TAG ROOTFS CONFIG
#   CONFIG is the image's "config" JSON object (User, Entrypoint, Env, ...).
make_image() {
  local out=$1 tag=$2 rootfs=$3 config=$4
  local d
  d="$work/image-$(basename "$out" .tar)"
  rm -rf "$d"
  mkdir -p "$d"
  # The root directory's own entry is in the layer too: make it ordinary.
  chmod 0755 "$rootfs"
  "${TAR[@]}" -C "$rootfs" -cf "$d/layer.tar" .
  local diff_id
  diff_id=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
  mkdir "$d/$diff_id"
  mv "$d/layer.tar" "$d/$diff_id/layer.tar"

  printf '{"architecture":"amd64","config":%s,"created":"1970-01-01T00:00:00Z","history":[{"created":"1970-01-01T00:00:00Z","created_by":"lifecycle-jobs tests/cluster/images.sh"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$config" "$diff_id" >"$d/config.json"
  local config_id
  config_id=$(sha256sum "$d/config.json" | cut -d' ' -f1)
  mv "$d/config.json" "$d/$config_id.json"

  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
    "$config_id" "$tag" "$diff_id" >"$d/manifest.json"

  find "$d" -type d -exec chmod 0755 {} +
  find "$d" -type f -exec chmod 0644 {} +
  chown -R 0:0 "$d"
  mkdir -p "$(dirname "$out")"
  "${TAR[@]}" -C "$d" -cf "$out.tmp" manifest.json "$config_id.json" "$diff_id"
  mv "$out.tmp" "$out"
  log "$tag -> ${out#"$REPO"/} (sha256:${config_id:0:12})"
}

# A fresh staging root with the files every image carries.
new_rootfs() { # name -> prints the directory
  local r="$work/rootfs-$1"
  rm -rf "$r"
  mkdir -p "$r/etc/ssl/certs" "$r/tmp"
  chmod 1777 "$r/tmp"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  echo "$r"
}

finish_rootfs() { # dir: normalise modes and owners before tar
  local r=$1
  chown -R 0:0 "$r"
  find "$r" -type d ! -path "$r/tmp" -exec chmod 0755 {} +
  chmod 1777 "$r/tmp"
}

# Static binaries only (no shared libraries in the images). Refuses a dynamic one.
require_static() { # path
  [ -x "$1" ] || die "missing binary $1"
  local headers
  headers=$(LC_ALL=C readelf -l "$1" 2>/dev/null) || die "cannot read the ELF headers of $1"
  if [[ $headers == *INTERP* ]]; then
    die "$1 is dynamically linked; images carry static binaries only"
  fi
}

ENV_PATH='"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"'

# --- product images --------------------------------------------------------------
build_product_binaries() {
  log "building ${PRODUCT_BINS[*]} (release, static glibc, $RUST_TARGET)"
  # crt-static links glibc statically; with an explicit --target, RUSTFLAGS
  # applies to the target only, so build scripts and proc macros stay dynamic.
  # The path remaps keep the build machine's paths out of the binaries.
  # One cargo invocation per binary: features unify across the packages of one
  # invocation, and the agent must not get the server's (rustls' TLS 1.2 and
  # logging: ~190 KB more, and TLS 1.2 offered by an agent meant for 1.3 only).
  local b
  for b in "${PRODUCT_BINS[@]}"; do
    (cd "$REPO" && RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$REPO=/src --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
      cargo build --release --locked --target "$RUST_TARGET" --target-dir "$REPO/target" -p "$b")
  done
}

product_image() { # binary name
  local name=$1
  local bin="$REPO/target/$RUST_TARGET/release/$name"
  require_static "$bin"
  local r
  r=$(new_rootfs "$name")
  mkdir -p "$r/usr/local/bin" "$r/home/nonroot"
  install -m 0755 "$bin" "$r/usr/local/bin/$name"
  # A nonroot user (the distroless convention, uid/gid 65532), so the images
  # run under `runAsNonRoot: true` and tools that look the user up find it.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$r/etc/group"
  chmod 0644 "$r/etc/passwd" "$r/etc/group"
  finish_rootfs "$r"
  chown 65532:65532 "$r/home/nonroot"
  make_image "$IMAGES_DIR/$name.tar" "lifecycle-jobs/$name:$PRODUCT_TAG" "$r" \
    "{\"Entrypoint\":[\"/usr/local/bin/$name\"],\"Env\":[$ENV_PATH,\"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\"],\"User\":\"65532:65532\",\"WorkingDir\":\"/\"}"
}

# --- cluster images ----------------------------------------------------------------
# Debian's static busybox into ROOTFS/bin, with one relative symlink per applet
# (sh, sleep, wget, nslookup, nc, httpd, ...).
add_busybox() { # rootfs
  local r=$1 bb=/bin/busybox applet
  require_static "$bb"
  mkdir -p "$r/bin"
  install -m 0755 "$bb" "$r/bin/busybox"
  for applet in $("$bb" --list | LC_ALL=C sort); do
    [ "$applet" = busybox ] || ln -s busybox "$r/bin/$applet"
  done
}

busybox_image() {
  local r
  r=$(new_rootfs busybox)
  mkdir -p "$r/root" "$r/var/www"
  add_busybox "$r"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
  chmod 0644 "$r/etc/passwd" "$r/etc/group"
  finish_rootfs "$r"
  make_image "$IMAGES_DIR/busybox.tar" "$BUSYBOX_IMAGE" "$r" \
    "{\"Cmd\":[\"sh\"],\"Env\":[\"PATH=/bin\"],\"WorkingDir\":\"/\"}"
}

pause_image() {
  local r
  r=$(new_rootfs pause)
  # -s and no build id: the binary depends on the source and the compiler only.
  gcc -Os -static -s -Wl,--build-id=none -o "$work/pause" "$CLUSTER_DIR/pause.c"
  install -m 0755 "$work/pause" "$r/pause"
  finish_rootfs "$r"
  make_image "$IMAGES_DIR/pause.tar" "$PAUSE_IMAGE" "$r" \
    "{\"Entrypoint\":[\"/pause\"],\"User\":\"65535:65535\",\"WorkingDir\":\"/\"}"
}

coredns_image() {
  local bin
  bin="$(k8s_bin_dir)/coredns"
  require_static "$bin"
  local r
  r=$(new_rootfs coredns)
  install -m 0755 "$bin" "$r/coredns"
  finish_rootfs "$r"
  # As upstream: /coredns, configured by `-conf /etc/coredns/Corefile` from a ConfigMap.
  make_image "$IMAGES_DIR/coredns.tar" "$COREDNS_IMAGE" "$r" \
    "{\"Entrypoint\":[\"/coredns\"],\"Env\":[$ENV_PATH],\"ExposedPorts\":{\"53/tcp\":{},\"53/udp\":{}},\"WorkingDir\":\"/\"}"
}

# --- example images ------------------------------------------------------------------
# The lifecycle job of examples/opentofu-environment: OpenTofu's tofu (static,
# built from the Go module proxy) and busybox's sh, which Qovery's recipe
# (`tofu init ... && tofu apply ... && tofu output -json > ...`) runs in.
# Non-root (65532, as the product's images); the pod gives it a writable /tmp.
opentofu_image() {
  local tofu
  tofu="$("$REPO/tests/tools/build-tofu.sh" | tail -n1)/tofu"
  require_static "$tofu"
  local r
  r=$(new_rootfs opentofu-job)
  mkdir -p "$r/usr/local/bin" "$r/home/nonroot"
  add_busybox "$r"
  install -m 0755 "$tofu" "$r/usr/local/bin/tofu"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$r/etc/group"
  chmod 0644 "$r/etc/passwd" "$r/etc/group"
  finish_rootfs "$r"
  chown 65532:65532 "$r/home/nonroot"
  make_image "$IMAGES_DIR/opentofu-job.tar" "$OPENTOFU_IMAGE" "$r" \
    "{\"Cmd\":[\"sh\"],\"Env\":[\"PATH=/usr/local/bin:/bin\",\"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\"],\"User\":\"65532:65532\",\"WorkingDir\":\"/\"}"
}

[ "$(id -u)" -eq 0 ] || die "run as root (image files are chowned to fixed owners)"
busybox_image
pause_image
coredns_image
if [ "$mode" != cluster ]; then
  [ "$mode" = no-build ] || build_product_binaries
  for b in "${PRODUCT_BINS[@]}"; do product_image "$b"; done
  # The OpenTofu example's image costs a tofu build (minutes, once per
  # machine): the e2e suite asks for it, `make run` does not need it.
  if [ "${LJ_OPENTOFU_IMAGE:-0}" = 1 ]; then opentofu_image; fi
fi
