#!/usr/bin/env bash
# Writes the krew plugin manifest (https://krew.sigs.k8s.io) of kubectl
# lifecycle for release TAG, from the plugin archives in DIST (their sha256).
#   .github/scripts/krew-manifest.sh v0.1.0 dist >lifecycle.yaml
set -euo pipefail
tag=$1 dist=$2
repo=${GITHUB_REPOSITORY:-lifecycle-jobs/lifecycle-jobs}
cat <<YAML
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: lifecycle
spec:
  version: $tag
  homepage: https://github.com/$repo
  shortDescription: Lifecycle jobs of environments (start, stop, delete, outputs)
  description: |
    Acts on lifecycle-jobs environments: start, stop and delete an environment,
    force a lifecycle job's run, show runs and published outputs.
    Needs lifecycle-jobs installed in the cluster.
  platforms:
YAML
for arch in amd64 arm64; do
  archive=kubectl-lifecycle_${tag}_linux_${arch}.tar.gz
  [ -f "$dist/$archive" ] || { echo "krew-manifest: $dist/$archive is missing" >&2; exit 1; }
  sha=$(sha256sum "$dist/$archive" | cut -d' ' -f1)
  cat <<YAML
    - selector:
        matchLabels:
          os: linux
          arch: $arch
      uri: https://github.com/$repo/releases/download/$tag/$archive
      sha256: $sha
      bin: kubectl-lifecycle
YAML
done
