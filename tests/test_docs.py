"""docs/DESIGN.md is what the code, the README and the benchmark notes cite as "DESIGN.md section N" (or
"section N.M"): every such citation must name a section that exists there, and so must the document's
own cross-references ("section 4.3"). Its sections are numbered in order, and the facts a user looks up
in it (feature names and option defaults, training and protocol defaults, the public names) match the code.
"""

import re
from pathlib import Path

import pytest

import moola_lib
from moola_lib.features.options import FEATURE_OPTION_DEFAULTS
from moola_lib.features.relativity import FEATURE_NAMES
from moola_lib.pretraining.config import PretrainConfig
from moola_lib.transfer.config import TransferConfig

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "DESIGN.md"
# where citations live: the library, the tests, the notebooks and the top-level notes
CITING_GLOBS = (
    "moola_lib/**/*.py",
    "tests/**/*.py",
    "notebooks/*.ipynb",
    "README.md",
    "BENCHMARKS.md",
    "VALIDATION.md",
    "docs/*.md",
)

_NUMBER = r"\d+(?:\.\d+)?"
# "DESIGN.md section N", "DESIGN.md, section N.M", "DESIGN.md sections N and M", also across a line break
# inside a comment ("DESIGN.md" at a line's end, "# section N" on the next) or a notebook's JSON source
_GAP = r"(?:[\s#\",)\]]|\\n)*"  # also after a markdown link: "[DESIGN.md](docs/DESIGN.md) section N"
CITATION = re.compile(rf"DESIGN\.md{_GAP}sections?\s+({_NUMBER}(?:\s*(?:,|and|-|to)\s*{_NUMBER})*)")
INTERNAL = re.compile(rf"\bsections?\s+({_NUMBER}(?:\s*(?:,|and|-|to)\s*{_NUMBER})*)")
HEADING = re.compile(rf"^(#{{2,3}})\s+({_NUMBER})\.?\s+\S", re.MULTILINE)


def design_sections(text: str) -> list[str]:
    """The section numbers of a design document's headings, in order ("2" for "## 2. Title", "2.3" for
    "### 2.3 Title")."""
    return [m.group(2) for m in HEADING.finditer(text)]


def cited_sections(text: str, pattern: re.Pattern = CITATION) -> list[tuple[str, int]]:
    """(section, line number) of every citation of ``pattern`` in ``text``."""
    found = []
    for m in pattern.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        found += [(number, line) for number in re.findall(_NUMBER, m.group(1))]
    return found


def missing_citations(sources: dict[str, str], sections: set[str], pattern: re.Pattern = CITATION) -> list[str]:
    """The "file:line: section N" of every citation in ``sources`` (name -> text) of a section not in
    ``sections``."""
    return [
        f"{name}:{line}: section {number}"
        for name, text in sources.items()
        for number, line in cited_sections(text, pattern)
        if number not in sections
    ]


def citing_files() -> dict[str, str]:
    files = {p for pattern in CITING_GLOBS for p in ROOT.glob(pattern) if p.is_file()}
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in sorted(files)}


def design_text() -> str:
    return DESIGN.read_text(encoding="utf-8")


def section_text(number: str) -> str:
    """The text of top-level section ``number`` of docs/DESIGN.md (up to the next top-level heading)."""
    text = design_text()
    start = re.search(rf"^## {re.escape(number)}\.\s", text, re.MULTILINE)
    assert start, f"docs/DESIGN.md has no section {number}"
    end = re.compile(r"^## ", re.MULTILINE).search(text, start.end())
    return text[start.start() : end.start() if end else len(text)]


# --------------------------------------------------------------------------------------------------
# the checker itself, on made-up text (built from parts, so this file cites no section itself)

CITE = "DESIGN" + ".md"
MADE_UP_DESIGN = "# Title\n\n## 1. One\n\n### 1.1 Sub\n\n## 2. Two\n\ntext, see section 1.1\n"


def test_the_checker_reads_headings_and_citations():
    assert design_sections(MADE_UP_DESIGN) == ["1", "1.1", "2"]
    text = (
        f"a ({CITE} section 2) b\n{CITE}, section 1.1 c\n# see {CITE}\n# section 1\n"
        f'"{CITE}\\n", "section 2"\n{CITE} sections 1 and 2\n{CITE}\'s rule (no number)\n'
        f"[{CITE}](docs/{CITE}) section 1.1\n"
    )
    assert cited_sections(text) == [("2", 1), ("1.1", 2), ("1", 3), ("2", 5), ("1", 6), ("2", 6), ("1.1", 8)]


def test_the_checker_fails_on_a_missing_section():
    sections = set(design_sections(MADE_UP_DESIGN))
    good = {"a.py": f"# ({CITE} section 1.1)", "b.md": f"see {CITE} sections 1 and 2"}
    assert missing_citations(good, sections) == []
    bad = {"a.py": f"ok ({CITE} section 2)\n\n# wrong ({CITE} section 3)", "c.md": f"{CITE} section 1.2"}
    assert missing_citations(bad, sections) == ["a.py:3: section 3", "c.md:1: section 1.2"]
    assert missing_citations({"d.md": "see section 4"}, sections, INTERNAL) == ["d.md:1: section 4"]


# --------------------------------------------------------------------------------------------------
# the repository


def test_design_document_exists_and_is_numbered_in_order():
    numbers = design_sections(design_text())
    top = [n for n in numbers if "." not in n]
    assert top == [str(i) for i in range(1, len(top) + 1)], f"top-level sections out of order: {top}"
    for section in top:
        subs = [n.split(".")[1] for n in numbers if n.startswith(f"{section}.")]
        assert subs == [str(i) for i in range(1, len(subs) + 1)], f"section {section}'s subsections: {subs}"


def test_every_citation_names_an_existing_section():
    files = citing_files()
    assert "README.md" in files and "moola_lib/features/relativity.py" in files and "notebooks/eda.ipynb" in files
    assert sum(len(cited_sections(text)) for text in files.values()) >= 10  # the citations are found
    assert missing_citations(files, set(design_sections(design_text()))) == []


def test_design_cross_references_exist():
    text = design_text()
    assert cited_sections(text, INTERNAL)
    assert missing_citations({"docs/DESIGN.md": text}, set(design_sections(text)), INTERNAL) == []


def _row(line: str) -> list[str]:
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def test_section_3_names_every_feature_and_every_option_default():
    text = section_text("3")
    rows = [_row(line) for line in text.splitlines() if line.startswith("|")]
    assert [r[1] for r in rows if r[0].isdigit()] == list(FEATURE_NAMES)
    documented = {r[0]: r[1] for r in rows if r[0] in FEATURE_OPTION_DEFAULTS}
    expected = {k: f'"{v}"' if isinstance(v, str) else str(v) for k, v in FEATURE_OPTION_DEFAULTS.items()}
    assert documented == expected


# the defaults a reader looks up: the first mention of `name` in the document is followed, within a few
# characters and no other number, by the value
TRAINING_DEFAULTS = (
    "hidden_size",
    "num_layers",
    "dropout",
    "lr",
    "weight_decay",
    "warmup_epochs",
    "grad_clip",
    "mask_ratio",
    "mean_span",
    "huber_delta",
)
PROTOCOL_DEFAULTS = ("folds", "repeats", "inner_val_fraction", "alpha", "power")


@pytest.mark.parametrize(
    "section, config, name",
    [("4", PretrainConfig, n) for n in TRAINING_DEFAULTS] + [("5", TransferConfig, n) for n in PROTOCOL_DEFAULTS],
)
def test_documented_defaults_match_the_code(section, config, name):
    m = re.search(rf"`{name}`[^\d`]*(?:`[a-z_]+`[^\d`]*)?(\d+(?:\.\d+)?(?:e-?\d+)?)", section_text(section))
    assert m, f"docs/DESIGN.md section {section} does not state the default of {name}"
    assert float(m.group(1)) == getattr(config(), name), f"{name}: documented {m.group(1)}"


def test_section_7_names_every_public_name():
    text = section_text("7")
    missing = [name for name in moola_lib.__all__ if not re.search(rf"`{name}\b", text)]
    assert missing == []
