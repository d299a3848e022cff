"""JUnit XML: one ``testsuite`` per drill run, one ``testcase`` per objective, so CI systems show
a missed objective as a failed test. A run that ended in error gets one errored test case."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from drills.journal import Journal


def suite(journal: Journal) -> ET.Element:
    cases = journal.objectives
    el = ET.Element("testsuite", name=f"drill.{journal.drill}", tests=str(max(1, len(cases))))
    el.set("time", f"{journal.duration_s:.3f}")
    failures = 0
    for obj in cases:
        case = ET.SubElement(el, "testcase", classname=f"drill.{journal.drill}", name=obj.name)
        if obj.passed is not True:
            failures += 1
            fail = ET.SubElement(case, "failure", message=f"target {obj.target}, measured "
                                 f"{obj.measured}")
            fail.text = f"{obj.name}: target {obj.target}, measured {obj.measured}"
    if journal.error or not cases:
        case = ET.SubElement(el, "testcase", classname=f"drill.{journal.drill}", name="run")
        err = ET.SubElement(case, "error", message=journal.error or "no objectives were judged")
        err.text = journal.error or ""
        el.set("errors", "1")
    el.set("failures", str(failures))
    return el


def write_junit(path: Path, journals: Sequence[Journal]) -> None:
    root = ET.Element("testsuites")
    for journal in journals:
        root.append(suite(journal))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
