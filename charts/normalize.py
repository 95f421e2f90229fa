#!/usr/bin/env python3
"""Reads Kubernetes YAML on stdin; prints one canonical JSON line per object,
sorted by kind/namespace/name, without what only Helm adds (its labels, its hooks) or
what kustomize adds uniformly (part-of), so `diff` shows real differences.

Two differences that change nothing are evened out as well:
- whitespace inside multi-line strings (kustomize re-folds `>-` scalars with
  more-indented lines, doubling their line breaks; CEL ignores whitespace);
- the order of a container's `env` (a kustomize patch moves the entries it
  changes first); env entries here never refer to each other with $(VAR).
"""
import json
import sys

import yaml

DROP_LABELS = {
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
}

def canonical(v):
    if isinstance(v, dict):
        out = {k: canonical(x) for k, x in v.items()}
        if isinstance(out.get("env"), list) and "name" in out:  # a container
            out["env"] = sorted(out["env"], key=lambda e: e["name"])
        return out
    if isinstance(v, list):
        return [canonical(x) for x in v]
    if isinstance(v, str) and "\n" in v:
        return " ".join(v.split())
    return v


objs = []
for o in yaml.safe_load_all(sys.stdin):
    if not o:
        continue
    meta = o.setdefault("metadata", {})
    if "helm.sh/hook" in (meta.get("annotations") or {}):
        continue  # Helm's hooks (the install check) have no counterpart in manifests/
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in DROP_LABELS}
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    objs.append(canonical(o))
objs.sort(key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]))
for o in objs:
    print(json.dumps(o, sort_keys=True))
