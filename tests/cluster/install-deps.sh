#!/usr/bin/env bash
# Debian packages the local cluster and the tests need. Idempotent: installs
# only what is missing, so a machine that has them does not touch apt.
set -euo pipefail
pkgs=(runc containerd containernetworking-plugins busybox-static iptables conntrack socat
      ethtool iproute2 ipset openssl curl ca-certificates gcc libc6-dev util-linux procps kmod
      python3 python3-yaml
      nghttp2-client
      chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "go is required to build the local cluster (Go module proxy)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "cargo is required" >&2; exit 1; }
