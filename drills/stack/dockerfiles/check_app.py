"""Run in the app image's build stage (``python check_app.py app.json``): import every module of
every top-level package the image holds, and resolve every console script's function.

``app.json`` (written by `drills.stack.app_context`): ``packages`` (top-level names),
``scripts`` (name -> ``module:attr``), ``left_out`` (top-level modules of the distributions
deliberately left out of the image: a module whose import fails for lack of one of them is
harness-only and skipped) and ``required`` (modules that must import all the same: what the
image runs). Any other failure exits 1 with the traceback, so a dependency missing from the
image fails the build, not a drill. Standard library only: it runs with the image's Python.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import traceback


def module_names(top: str) -> list[str]:
    """``top`` and every module below it (``__main__`` modules excepted: importing runs them)."""
    try:
        path = getattr(importlib.import_module(top), "__path__", None)
    except Exception:  # reported by the caller, which imports it again
        return [top]
    if path is None:
        return [top]
    found = pkgutil.walk_packages(path, top + ".", onerror=lambda _: None)
    return [top, *(m.name for m in found if m.name.rsplit(".", 1)[-1] != "__main__")]


def main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    left_out, required = set(spec["left_out"]), tuple(spec["required"])
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    names = [name for top in spec["packages"] for name in module_names(top)]
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            needed = any(name == r or name.startswith(r + ".") for r in required)
            if missing in left_out and not needed:
                skipped[name] = missing
            else:
                failed[name] = traceback.format_exc()
        except Exception:
            failed[name] = traceback.format_exc()
    for script, target in spec["scripts"].items():
        module, _, attr = target.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            if not callable(obj):
                raise TypeError(f"{target} is not callable")
        except Exception:
            failed[f"script {script} ({target})"] = traceback.format_exc()
    print(f"imported {len(names) - len(skipped) - len(failed)} modules; harness-only, skipped: "
          + (", ".join(f"{n} ({m})" for n, m in sorted(skipped.items())) or "none"))
    for name, text in failed.items():
        print(f"FAILED {name}:\n{text}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
