"""The docs state the present: no dated run history in prose, and a README short enough to read at once.

A doc says what is true now and the command that reproduces it; when and where a figure was measured lives in the
bench scripts' JSON under bench/results/ (machine, date, commit), which the docs link. A file name such as
`families-20261206-095025.json` has no dashes inside its date and is not a date here.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "docs/guide/guide.template.md"]
README_MAX_LINES = 120

DAY = re.compile(r"(?<!\d)20\d\d-\d\d-\d\d(?!\d)")  # 2026-11-22, also inside 2026-11-22T10:00
MONTH = re.compile(r"\(20\d\d-\d\d\)")  # (2026-11)


def dated_lines(path: Path) -> list[str]:
    """``name:line: text`` of every line of ``path`` that carries a day or a (year-month)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            for n, line in enumerate(lines, 1) if DAY.search(line) or MONTH.search(line)]  # fmt: skip


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_doc_dates_its_prose(path):
    dated = dated_lines(path)
    assert not dated, "dated prose (say what is true now; dates belong in bench/results/*.json):\n" + "\n".join(dated)


def test_the_readme_is_at_most_120_lines():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, more than {README_MAX_LINES}"


def test_a_file_name_with_an_undashed_date_is_not_a_date_and_a_dated_sentence_is():
    assert not DAY.search("[result](../bench/results/families-20261206-095025.json)")
    assert not MONTH.search("runs/vae-fashion-mnist-20261122-000931")
    assert DAY.search("timed on the Intel machine (2026-11-22)")
    assert DAY.search('"date": "2026-12-06T06:32:51+00:00"')
    assert MONTH.search("1.7 ms median (2026-11)")


def test_every_relative_link_of_the_readme_leads_to_a_file():
    """The README is not part of the docs site, whose strict build checks the docs' links: check its own here."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]
    missing = [t for t in targets if t and not (ROOT / t).exists()]
    assert targets and not missing, f"README.md links to missing files: {missing}"
