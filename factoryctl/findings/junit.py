"""JUnit XML, the one writer for every command that reports to a CI test view (verify's host
checks and benchmark figures, drift's artifacts, stacks and hosts).

A report is suites of cases; each case passed, failed (`<failure>`: the thing checked is
wrong), errored (`<error>`: it could not be checked) or was skipped. Text is made XML-safe:
command output may carry escape sequences or NULs, which would make the file unreadable to
every JUnit consumer.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..workspace import atomic_write

OUTCOMES = ("passed", "failure", "error", "skipped")
# XML 1.0 allows tab, newline, carriage return and text from U+0020 on.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_safe(text: str) -> str:
    return _XML_BAD.sub("\ufffd", text)


@dataclass
class Case:
    classname: str
    name: str
    outcome: str = "passed"  # passed | failure | error | skipped
    message: str = ""
    type: str = ""  # the failure's or error's type attribute
    detail: str | None = None  # the element's text (None: an empty element)
    output: str = ""  # system-out of a passed case
    time: str | None = None  # seconds as the attribute shows them; None: no attribute


@dataclass
class Suite:
    name: str
    cases: list[Case] = field(default_factory=list)
    timestamp: str | None = None
    time: str | None = None

    def count(self, outcome: str) -> int:
        return sum(c.outcome == outcome for c in self.cases)


@dataclass
class Report:
    name: str
    suites: list[Suite] = field(default_factory=list)
    time: str | None = None  # set: the root also carries the totals and this time


def to_xml(report: Report) -> str:
    root = ET.Element("testsuites", name=xml_safe(report.name))
    for s in report.suites:
        attrs = {"name": xml_safe(s.name)}
        if s.timestamp is not None:
            attrs["timestamp"] = s.timestamp
        attrs |= {"tests": str(len(s.cases)), "failures": str(s.count("failure")),
                  "errors": str(s.count("error")), "skipped": str(s.count("skipped"))}
        if s.time is not None:
            attrs["time"] = s.time
        suite = ET.SubElement(root, "testsuite", attrs)
        for c in s.cases:
            ca = {"classname": xml_safe(c.classname), "name": xml_safe(c.name)}
            if c.time is not None:
                ca["time"] = c.time
            case = ET.SubElement(suite, "testcase", ca)
            if c.outcome in ("failure", "error"):
                el = ET.SubElement(case, c.outcome, message=xml_safe(c.message), type=c.type)
                if c.detail is not None:
                    el.text = xml_safe(c.detail)
            elif c.outcome == "skipped":
                ET.SubElement(case, "skipped", message=xml_safe(c.message))
            elif c.output:
                ET.SubElement(case, "system-out").text = xml_safe(c.output)
    if report.time is not None:
        for key in ("tests", "failures", "errors", "skipped"):
            root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
        root.set("time", report.time)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(report: Report, path: Path) -> Path:
    return atomic_write(path, to_xml(report))
