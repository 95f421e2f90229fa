#!/usr/bin/env python3
"""Generates the chart's static templates from manifests/base/ (one source of truth).

Objects that take values (the namespace, the Deployment, the Service, the
webhook configurations, ...) are templated by hand in
charts/lifecycle-jobs/templates/ and listed in HAND_TEMPLATED; every other
file that manifests/base/kustomization.yaml lists is copied into
templates/<file>, its objects' metadata.labels replaced by the chart's labels
helper (which adds Helm's labels, part-of and commonLabels), and the base's
namespace (lifecycle-jobs-system, outside comments) replaced by the release's
(the lj.namespace helper): object namespaces, RBAC subjects, and the names in
the admission policies' CEL (the server's username, its TLS Secret's
namespace, the never-an-environment list).

  charts/sync-manifests.py            rewrite the generated templates
  charts/sync-manifests.py --check    exit 1 when they are out of date

charts/test-render.sh runs --check, then proves that the chart and
manifests/ render the same objects.
"""
import pathlib
import re
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
BASE = REPO / "manifests" / "base"
TEMPLATES = REPO / "charts" / "lifecycle-jobs" / "templates"

# Templated by hand: they depend on values.
HAND_TEMPLATED = {
    "namespace.yaml",
    "serviceaccount.yaml",
    "service.yaml",
    "network-policy.yaml",
    "deployment.yaml",
    "pdb.yaml",
    "webhooks.yaml",
}
# Rendered only under a condition (file -> Go template condition).
CONDITIONS = {"rbac-certificates.yaml": 'eq .Values.certificates.mode "self-managed"'}

# The namespace manifests/base installs into, and what the chart writes instead.
BASE_NAMESPACE = "lifecycle-jobs-system"
CHART_NAMESPACE = '{{ include "lj.namespace" $ }}'

HEADER = (
    "{{{{- /* Generated from manifests/base/{name} by charts/sync-manifests.py:"
    " edit that file and rerun the script, never this one. */}}}}\n"
)


def fail(msg):
    sys.exit(f"sync-manifests: {msg}")


def transform_doc(doc, name):
    lines = doc.split("\n")
    out, i, in_meta, done = [], 0, False, False
    while i < len(lines):
        line = lines[i]
        if line == "metadata:":
            in_meta = True
            out.append(line)
            i += 1
            continue
        if in_meta and line and not line.startswith(" ") and not line.startswith("#"):
            if not done:  # metadata without labels
                out.append('  {{- include "lj.meta" (dict "root" $) | nindent 2 }}')
                done = True
            in_meta = False
        if in_meta and line.startswith("  annotations:"):
            fail(f"{name}: metadata.annotations in a generated object: template it by hand")
        if in_meta and line == "  labels:":
            pairs = []
            i += 1
            while i < len(lines) and lines[i].startswith("    "):
                m = re.fullmatch(r"    ([A-Za-z0-9./_-]+): *(.*)", lines[i])
                if not m:
                    fail(f"{name}: cannot read label line {lines[i]!r}")
                value = yaml.safe_load(m.group(2))
                pairs.append(f'"{m.group(1)}" "{value}"')
                i += 1
            extra = f' "extra" (dict {" ".join(pairs)})' if pairs else ""
            out.append(f'  {{{{- include "lj.meta" (dict "root" ${extra}) | nindent 2 }}}}')
            done = True
            continue
        out.append(line)
        i += 1
    if in_meta and not done:
        out.append('  {{- include "lj.meta" (dict "root" $) | nindent 2 }}')
    return "\n".join(out)


def with_release_namespace(text):
    """The base's namespace replaced by the release's on every line but comments
    (they describe the default)."""
    return "\n".join(
        line if line.lstrip().startswith("#") else line.replace(BASE_NAMESPACE, CHART_NAMESPACE)
        for line in text.split("\n")
    )


def generate(name):
    text = (BASE / name).read_text()
    if "{{" in text:
        fail(f"{name} contains '{{{{', which Helm would read as a template")
    text = with_release_namespace(text)
    docs = re.split(r"(?m)^---\n", text)
    body = "---\n".join(transform_doc(d, name) for d in docs)
    out = HEADER.format(name=name)
    if name in CONDITIONS:
        out += f"{{{{- if {CONDITIONS[name]} }}}}\n{body.rstrip()}\n{{{{- end }}}}\n"
    else:
        out += body
    return out


def main():
    check = "--check" in sys.argv[1:]
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    stale = []
    for name in kustomization["resources"]:
        if name in HAND_TEMPLATED:
            if not (TEMPLATES / name).exists():
                stale.append(f"templates/{name} (templated by hand) is missing")
            continue
        want = generate(name)
        path = TEMPLATES / name
        have = path.read_text() if path.exists() else None
        if have != want:
            if check:
                stale.append(f"templates/{name} differs from manifests/base/{name}")
            else:
                path.write_text(want)
                print(f"sync-manifests: wrote charts/lifecycle-jobs/templates/{name}")
    if stale:
        for s in stale:
            print(f"sync-manifests: {s}", file=sys.stderr)
        fail("the chart is out of date with manifests/base: run charts/sync-manifests.py")


if __name__ == "__main__":
    main()
