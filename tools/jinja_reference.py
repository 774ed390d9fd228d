#!/usr/bin/env python3
"""Render the renderer's reference snippets with Python Jinja2 and store what it produced.

Usage (from the repository root, with Debian's python3-jinja2 3.1.2):
    /usr/bin/python3 tools/jinja_reference.py          # fill "expected" / "error" of every snippet in place
    /usr/bin/python3 tools/jinja_reference.py --check  # re-render, compare, write nothing; exit 1 on any difference

The snippets live in tests/MLNetGpt.Jinja.Tests/Chat/Reference/jinja-reference.json: a list of objects with
"name" (the behaviour, as a sentence), "template" and an optional "context" (template variables; a name that is
absent is undefined). For each one this script stores either "expected" (the rendered text) or
"error": {"type": <Python exception class>, "message": <its message>, "line": <the template line it names>}.

The environment is the one Hugging Face transformers builds for apply_chat_template: an
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the loopcontrols extension, a
{% generation %} tag that renders its body, tojson as json.dumps(ensure_ascii=False, ...), and the globals
raise_exception and strftime_now (here with the clock fixed at 2025-07-10 12:00:00 so that results repeat).
"""
import datetime
import json
import os
import sys
import traceback

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNIPPETS = os.path.join(ROOT, "tests", "MLNetGpt.Jinja.Tests", "Chat", "Reference", "jinja-reference.json")
FIXED_NOW = datetime.datetime(2025, 7, 10, 12, 0, 0)


class Generation(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %} renders its body (transformers records its span, nothing more)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return FIXED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, snippet):
    try:
        text = env.from_string(snippet["template"]).render(**snippet.get("context", {}))
        return {"expected": text}
    except jinja2.exceptions.TemplateSyntaxError as e:
        # str() of a syntax error adds the source line; the message and the line number are what we keep.
        return {"error": {"type": type(e).__name__, "message": e.message, "line": e.lineno}}
    except Exception as e:  # noqa: BLE001 - every failure is a result to record
        error = {"type": type(e).__name__, "message": str(e)}
        # Jinja2 rewrites tracebacks so that template frames carry template line numbers; the innermost is where it failed.
        lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == "<template>"]
        if lines:
            error["line"] = lines[-1]
        return {"error": error}


def main(argv):
    check = "--check" in argv
    with open(SNIPPETS, encoding="utf-8") as f:
        snippets = json.load(f)
    env = environment()
    names = set()
    differences = 0
    for snippet in snippets:
        if snippet["name"] in names:
            raise SystemExit(f"duplicate snippet name: {snippet['name']}")
        names.add(snippet["name"])
        result = render(env, snippet)
        stored = {k: snippet[k] for k in ("expected", "error") if k in snippet}
        if stored != result:
            differences += 1
            if check:
                print(f"DIFF  {snippet['name']}: stored {stored!r}, Jinja2 gives {result!r}")
        snippet.pop("expected", None)
        snippet.pop("error", None)
        snippet.update(result)
    if not check:
        with open(SNIPPETS, "w", encoding="utf-8", newline="\n") as f:
            json.dump(snippets, f, ensure_ascii=False, indent=1)
            f.write("\n")
    errors = sum(1 for s in snippets if "error" in s)
    print(f"jinja2 {jinja2.__version__}: {len(snippets)} snippets ({errors} raise), {differences} "
          f"{'differ from the stored results' if check else 'changed'}")
    return 1 if check and differences else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
