"""Every results file under benchmarks/results/ says where it came from: the command (or an
explicit "not recorded"), the commit and the date; recovered provenance says how it was found."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
JSON_FILES = sorted(RESULTS.glob("*.json"))
MD_FILES = sorted(RESULTS.glob("*.md"))

COMMAND_KEYS = ("command",)
COMMIT_KEYS = ("commit", "git_commit")
DATE_KEYS = ("date", "date_utc")
MAX_DEPTH = 3

HEX_COMMIT = re.compile(r"\b[0-9a-f]{7,40}\b")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
BACKTICKED_COMMAND = re.compile(r"`(?:python3? |gsid |benchmarks/)[^`]+`")
RECOVERED_FIELDS = ("command", "commit", "added_in_commit", "date", "machine", "seed", "how")


def find_values(obj: Any, keys: tuple[str, ...], depth: int = 0) -> list[Any]:
    """Values of `keys` in `obj` and in the dicts nested in it, down to MAX_DEPTH levels."""
    found: list[Any] = []
    if depth > MAX_DEPTH:
        return found
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in keys:
                found.append(v)
            if isinstance(v, dict | list):
                found += find_values(v, keys, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            found += find_values(v, keys, depth)
    return found


def _strings(values: list[Any]) -> list[str]:
    return [v for v in values if isinstance(v, str) and v.strip()]


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_results_present() -> None:
    assert JSON_FILES and MD_FILES


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_json_records_command(path: Path) -> None:
    data = _load(path)
    commands = _strings(find_values(data, COMMAND_KEYS))
    notes = _strings(find_values(data, ("command_note",)))
    assert commands or any(n.startswith("not recorded") for n in notes), (
        f"{path.name}: no command and no command_note 'not recorded'"
    )


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_json_records_commit(path: Path) -> None:
    commits = _strings(find_values(_load(path), COMMIT_KEYS))
    assert any(HEX_COMMIT.match(c) for c in commits), f"{path.name}: no commit ({commits})"


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_json_records_date(path: Path) -> None:
    dates = _strings(find_values(_load(path), DATE_KEYS))
    assert any(ISO_DATE.match(d) for d in dates), f"{path.name}: no date ({dates})"


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_recovered_provenance_is_complete(path: Path) -> None:
    prov = _load(path).get("provenance")
    if not isinstance(prov, dict) or not prov.get("recovered"):
        pytest.skip("provenance recorded by the run itself")
    missing = [k for k in RECOVERED_FIELDS if k not in prov]
    assert not missing, f"{path.name}: provenance lacks {missing}"
    assert prov["command"] or str(prov.get("command_note", "")).startswith("not recorded")
    assert re.fullmatch(r"[0-9a-f]{12}", prov["added_in_commit"])
    assert prov["commit"] == prov["added_in_commit"] and prov["commit_note"]
    assert ISO_DATE.match(prov["date"])
    assert prov["machine"]
    assert isinstance(prov["how"], str) and prov["how"].strip()


@pytest.mark.parametrize("path", MD_FILES, ids=lambda p: p.name)
def test_markdown_records_command_and_commit(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert re.search(r"command", text, re.IGNORECASE) or BACKTICKED_COMMAND.search(text), (
        f"{path.name}: no command"
    )
    assert HEX_COMMIT.search(text), f"{path.name}: no commit"
