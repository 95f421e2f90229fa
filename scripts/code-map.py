#!/usr/bin/env python3
"""The code map of docs/architecture.md: every module of every crate with the
first sentence of its module doc. `scripts/code-map.py` rewrites the map
between the markers; `--check` (run by `make lint`) fails when a module was
added, moved or removed without the map following."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "architecture.md")
CRATES = [
    ("contract/src", "`lifecycle-contract`: the contract's names and rules, shared by every part"),
    ("webhook/src", "`lifecycle-webhook`: the server (admission, outputs API, controller)"),
    ("agent/src", "`lifecycle-agent`: the sidecar in every captured job pod"),
    ("kubectl-lifecycle/src", "`kubectl-lifecycle`: the kubectl plugin"),
]
START, END = "<!-- code-map:start -->", "<!-- code-map:end -->"


def first_sentence(path):
    doc = []
    for line in open(path, encoding="utf-8").read().split("\n"):
        if line.startswith("//!"):
            doc.append(line[3:].strip())
        elif doc:
            break
    text = " ".join(doc)
    m = re.match(r"(.+?\.)(\s|$)", text)
    return m.group(1) if m else text


def is_test(rel):
    parts = rel.split(os.sep)
    return parts[-1] == "tests.rs" or parts[-1].endswith("_tests.rs") or "tests" in parts[:-1] or "testdata" in parts


def code_map():
    out = []
    for src, title in CRATES:
        out.append(f"\n### {title}\n")
        base = os.path.join(ROOT, src)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for f in sorted(filenames):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, base)
                if not f.endswith(".rs") or is_test(rel):
                    continue
                sentence = first_sentence(path)
                if not sentence:
                    sys.exit(f"{src}/{rel}: no module doc (//!): say what the module is for")
                out.append(f"- `{src}/{rel}`: {sentence}")
    return "\n".join(out) + "\n"


def main():
    text = open(DOC, encoding="utf-8").read()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    new = before + START + "\n" + code_map() + END + after
    if "--check" in sys.argv[1:]:
        if new != text:
            sys.exit("docs/architecture.md: the code map is out of date: run scripts/code-map.py")
        return
    open(DOC, "w", encoding="utf-8").write(new)


main()
