"""README is the front page (issue 18): at most 200 lines, the two set-up commands, and
links that stay inside the repository or go to the web."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def test_the_readme_is_at_most_200_lines() -> None:
    assert len(README.splitlines()) <= 200


def test_the_readme_holds_the_two_set_up_commands() -> None:
    assert "bash scripts/demo.sh" in README
    assert "bash scripts/test.sh" in README
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("bash scripts/test.sh")


def test_every_relative_link_of_the_readme_is_a_file_of_the_repository() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert relative, "README links to its docs"
    outside = [link for link in relative
               if not (ROOT / link).resolve().is_relative_to(ROOT) or not (ROOT / link).exists()]
    assert outside == []
