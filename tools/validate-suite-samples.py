#!/usr/bin/python3
"""Validates outputs sampled under JSON-Schema-Test-Suite schemas with Python's jsonschema (Debian's python3-jsonschema).

The samples come from the bench: dotnet bench/MLNetGpt.Bench/bin/Release/net10.0/MLNetGpt.Bench.dll suite-samples
../shared/json-schema-test-suite/draft2020-12 tests/Fixtures/tiny-gpt2-a /tmp/samples.jsonl 3 64 240
Usage: /usr/bin/python3 tools/validate-suite-samples.py /tmp/samples.jsonl
Prints the share of samples that parse as JSON and validate (Draft 2020-12, formats asserted), per suite file and in all,
and every failure. Exits 1 when any sample fails. No network: every accepted schema refers only into itself.
"""
import collections
import json
import sys

import jsonschema


def main(path):
    per_file = collections.defaultdict(lambda: [0, 0])
    failures = []
    unresolved = []
    for line in open(path, encoding="utf-8"):
        sample = json.loads(line)
        counts = per_file[sample["file"]]
        counts[1] += 1
        try:
            instance = json.loads(sample["output"])
        except ValueError as e:
            failures.append((sample, "not JSON: %s" % e))
            continue
        validator = jsonschema.Draft202012Validator(sample["schema"], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        try:
            errors = list(validator.iter_errors(instance))
        except jsonschema.exceptions.RefResolutionError as e:
            # This jsonschema release cannot resolve some in-document anchors and $id resources: not counted either way.
            unresolved.append((sample, str(e)))
            counts[1] -= 1
            continue
        if errors:
            failures.append((sample, errors[0].message))
            continue
        counts[0] += 1
    valid = sum(v for v, _ in per_file.values())
    total = sum(n for _, n in per_file.values())
    for name in sorted(per_file):
        v, n = per_file[name]
        print("%-28s %4d/%-4d" % (name, v, n))
    print("all: %d of %d samples valid (%.1f%%) under jsonschema %s" % (valid, total, 100.0 * valid / max(total, 1), jsonschema_version()))
    print("not evaluated (jsonschema could not resolve a reference): %d samples of %d schemas" % (len(unresolved), len({(s["file"], s["description"]) for s, _ in unresolved})))
    for sample, why in failures:
        print("FAIL %s / %s (seed %d): %r: %s" % (sample["file"], sample["description"], sample["seed"], sample["output"], why))
    return 0 if not failures else 1


def jsonschema_version():
    try:
        from importlib.metadata import version
        return version("jsonschema")
    except Exception:
        return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
