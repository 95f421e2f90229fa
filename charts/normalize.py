#!/usr/bin/env python3
"""Reads Kubernetes YAML on stdin; prints one canonical JSON line per object,
sorted by kind/namespace/name, without what only Helm adds (its labels) or
what kustomize adds uniformly (part-of), so `diff` shows real differences."""
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

objs = []
for o in yaml.safe_load_all(sys.stdin):
    if not o:
        continue
    meta = o.setdefault("metadata", {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in DROP_LABELS}
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    objs.append(o)
objs.sort(key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]))
for o in objs:
    print(json.dumps(o, sort_keys=True))
