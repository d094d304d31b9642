"""The README shows the benchmark's own figures: what stands between its ``bench:``
markers is what ``fraudstream bench`` wrote (``bench.report.refresh_readme``), never a copy
that could drift from ``docs/bench-results``."""

from __future__ import annotations

from pathlib import Path

from fraudstream.bench.report import readme_markers, refresh_readme

ROOT = Path(__file__).parents[2]


def test_refresh_replaces_only_what_stands_between_the_markers() -> None:
    begin, end = readme_markers("model")
    readme = f"# title\n\nbefore\n{begin}\nold table\n{end}\nafter\n"
    assert refresh_readme(readme, "model", "new table\n") == \
        f"# title\n\nbefore\n{begin}\nnew table\n{end}\nafter\n"
    assert refresh_readme("no markers here\n", "model", "x") == "no markers here\n"


def test_the_readme_model_table_is_the_one_the_benchmark_wrote() -> None:
    readme = (ROOT / "README.md").read_text()
    begin, end = readme_markers("model")
    shown = readme.split(begin, 1)[1].split(end, 1)[0].strip()
    written = (ROOT / "docs" / "bench-results" / "model.md").read_text()
    stamp, _, rest = written.partition("\n\n")
    table = rest[rest.index("| model |"):].split("\n\n", 1)[0].strip()
    assert shown == f"{stamp}\n\n{table}"
