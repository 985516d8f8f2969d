"""docs/plugins.md matches the plugin contracts member by member, so it cannot drift from them.

Each contract module ``argonne_kit/contracts/<module>.py`` has a doc section whose heading names
``contracts/<module>.py``. In that section every public class, module constant and class member
(method, property, attribute, dataclass/attrs field) is named in backticks — ``name``, ``name(…)``
or a dotted ``owner.name`` — and every method the section shows as an unqualified call exists in
the module. The members are read from the source (the class's own body, not inherited ones).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
CONTRACTS = ROOT / "argonne_kit" / "contracts"
MODULES = sorted(path.stem for path in CONTRACTS.glob("*.py") if path.stem != "__init__")

#: A heading that names a contract module, e.g. "### Attention — `contracts/attention.py`".
CONTRACT_HEADING = re.compile(r"^(#+) .*`contracts/(\w+)\.py`", re.M)
#: A backticked span (inline code).
SPAN = re.compile(r"`([^`\n]+)`")
#: The leading dotted name of a span; group 1 is its last part (``trainer.halt(reason)`` → halt).
LEADING_NAME = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)")
#: A span showing an unqualified method call (``verify(path)``); classes and ``a.b(…)`` excluded.
UNQUALIFIED_CALL = re.compile(r"^([a-z_]\w*)\(")
#: Calls a section may show that no contract class declares.
NOT_MEMBERS = {"factory"}


def _names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.Assign):
        return [target.id for target in node.targets if isinstance(target, ast.Name)]
    return []


def declared(source: str) -> dict[str, set[str]]:
    """Owner → the names it declares: each top-level class → its own members; ``""`` → the
    module's classes and constants (imports excluded)."""
    owners: dict[str, set[str]] = {"": set()}
    for node in ast.parse(source).body:
        owners[""].update(_names(node))
        if isinstance(node, ast.ClassDef):
            owners[node.name] = {name for child in node.body for name in _names(child)}
    return owners


def sections(doc: str) -> dict[str, str]:
    """Contract module → the text under the heading that names it, up to the next heading of the
    same or a higher level."""
    found = {}
    for match in CONTRACT_HEADING.finditer(doc):
        level = len(match.group(1))
        end = re.compile(rf"^#{{1,{level}}} ", re.M).search(doc, match.end())
        found[match.group(2)] = doc[match.end() : end.start() if end else len(doc)]
    return found


def mentioned(text: str) -> set[str]:
    return {m.group(1) for span in SPAN.findall(text) if (m := LEADING_NAME.match(span.strip()))}


def drift(doc: str) -> list[str]:
    """Every contract member the doc does not name, and every call it shows that no contract in
    the section's module declares."""
    problems = []
    by_module = sections(doc)
    for module in MODULES:
        owners = declared((CONTRACTS / f"{module}.py").read_text())
        text = by_module.get(module)
        if text is None:
            problems.append(f"no section headed `contracts/{module}.py`")
            continue
        names = mentioned(text)
        for owner, members in sorted(owners.items()):
            qualified = f"{module}.{owner}." if owner else f"{module}."
            problems += [qualified + m for m in sorted(members) if not m.startswith("_") and m not in names]
        known = set().union(*owners.values()) | NOT_MEMBERS
        for span in SPAN.findall(text):
            call = UNQUALIFIED_CALL.match(span.strip())
            if call and call.group(1) not in known:
                problems.append(f"{module}: documented `{span}` is not in the contract")
    return problems


def test_docs_name_every_contract_member_and_nothing_else():
    assert drift(DOC.read_text()) == []


def test_the_drift_check_fails_on_a_missing_or_an_extra_member():
    """The check above can fail: a member named nowhere else, a call no contract declares and a
    contract module without its section are each reported."""
    doc = DOC.read_text()
    assert "`epoch`" in doc and "`teardown()`" in doc
    without_epoch = doc.replace("`epoch`", "epoch")
    assert drift(without_epoch) == ["data.DataSource.epoch"]
    with_verify = doc.replace("`teardown()`", "`teardown()`, `verify(path)`")
    assert drift(with_verify) == ["parallel: documented `verify(path)` is not in the contract"]
    without_section = doc.replace("`contracts/schedule.py`", "schedules")
    assert "no section headed `contracts/schedule.py`" in drift(without_section)
