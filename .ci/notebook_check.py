#!/usr/bin/env python3
"""Notebook outputs for committing and for CI.

  notebook_check.py strip NOTEBOOK                 removes progress frames ("Installing package ...",
                                                   the package list of #r "nuget: ...") in place
  notebook_check.py compare COMMITTED FRESH CHECKS  PASS/FAIL: the fresh run has no error, the same cells
                                                   and per cell the same output kinds as the committed
                                                   notebook, and both carry the key figures CHECKS names

Outputs are compared by structure, not text: sampling, timings and machines vary.
"""
import json
import re
import sys

PROGRESS = re.compile(r"Installing package|Installed Packages|Restore sources|Determining projects to restore", re.I)


def text_of(output):
    parts = []
    if "text" in output:
        parts.append("".join(output["text"]))
    for value in output.get("data", {}).values():
        parts.append("".join(value) if isinstance(value, list) else json.dumps(value))
    if output.get("output_type") == "error":
        parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "\n".join(parts)


def is_progress(output):
    return output.get("output_type") in ("display_data", "stream") and PROGRESS.search(text_of(output)) is not None


def strip(path):
    nb = json.load(open(path))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = [o for o in cell.get("outputs", []) if not is_progress(o)]
    with open(path, "w") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")


def shape(nb):
    """Per cell: its type and, for code, the kinds of its outputs (output type and MIME types or stream name)."""
    cells = []
    for cell in nb["cells"]:
        kinds = []
        for o in cell.get("outputs", []):
            if is_progress(o):
                continue
            kind = o["output_type"]
            if kind == "stream":
                kind += ":" + o.get("name", "")
            elif kind in ("display_data", "execute_result"):
                kind = "result:" + "+".join(sorted(o.get("data", {})))
            kinds.append(kind)
        cells.append((cell["cell_type"], kinds))
    return cells


def figures(nb, checks):
    """Messages for each check whose pattern is missing from the outputs or whose figure is out of bounds."""
    text = "\n".join(text_of(o) for c in nb["cells"] for o in c.get("outputs", []))
    problems = []
    for check in checks:
        m = re.search(check["pattern"], text)
        if m is None:
            problems.append(f"no output matches /{check['pattern']}/ ({check['why']})")
            continue
        if m.re.groups == 0:
            continue
        value = float(m.group(1))
        if "min" in check and value < check["min"]:
            problems.append(f"{m.group(0)!r}: {value} is below {check['min']} ({check['why']})")
        if "max" in check and value > check["max"]:
            problems.append(f"{m.group(0)!r}: {value} is above {check['max']} ({check['why']})")
    return problems


def compare(committed_path, fresh_path, checks_path):
    name = committed_path.split("/")[-1]
    problems = []
    try:
        fresh = json.load(open(fresh_path))
    except Exception as e:
        print(f"notebook: FAIL {name} (no output notebook: {e})")
        return 1
    committed = json.load(open(committed_path))
    for i, cell in enumerate(fresh["cells"]):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                problems.append(f"cell {i} failed: {o.get('ename')}: {o.get('evalue')}")
    for i, cell in enumerate(committed["cells"]):
        if any(is_progress(o) for o in cell.get("outputs", [])):
            problems.append(f"cell {i} of the committed notebook holds progress frames (run .ci/notebooks --refresh)")
    a, b = shape(committed), shape(fresh)
    if len(a) != len(b):
        problems.append(f"the committed notebook has {len(a)} cells, the fresh run {len(b)}")
    else:
        for i, (was, now) in enumerate(zip(a, b)):
            if was != now:
                problems.append(f"cell {i}: committed outputs {was[1]}, fresh run {now[1]}")
    checks = json.load(open(checks_path)).get(name, [])
    problems += [f"fresh run: {p}" for p in figures(fresh, checks)]
    problems += [f"committed outputs: {p}" for p in figures(committed, checks)]
    if problems:
        print(f"notebook: FAIL {name}")
        for p in problems:
            print(f"  {p}")
        if any(not p.startswith("cell") or "failed" not in p for p in problems):
            print("  (if the notebook changed on purpose, run .ci/notebooks --refresh and commit the outputs)")
        return 1
    print(f"notebook: PASS {name} ({len(a)} cells, outputs match the committed ones in structure"
          + (f", {len(checks)} key figure(s) in bounds" if checks else "") + ")")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "strip":
        strip(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3], sys.argv[4]))
    else:
        sys.exit(__doc__)
