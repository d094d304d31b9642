"""fraudstream.package_view: the wheel's layout out of a checkout's folders."""

from __future__ import annotations

from pathlib import Path

from fraudstream.package_view import SUBPACKAGES, build_package_view

ROOT = Path(__file__).resolve().parents[2]


def test_the_view_holds_every_part_where_the_wheel_puts_it(tmp_path: Path) -> None:
    view = build_package_view(tmp_path / "view")
    package = view / "fraudstream"
    assert (package / "cli.py").resolve() == ROOT / "fraudstream" / "cli.py"
    for name in SUBPACKAGES:
        assert (package / name).resolve() == ROOT / name
        assert (package / name / "__init__.py").is_file()
    assert not (package / "__pycache__").exists()


def test_the_view_is_made_afresh(tmp_path: Path) -> None:
    view = tmp_path / "view"
    (view / "fraudstream" / "stale.py").parent.mkdir(parents=True)
    (view / "fraudstream" / "stale.py").write_text("")
    build_package_view(view)
    assert not (view / "fraudstream" / "stale.py").exists()
