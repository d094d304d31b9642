"""Whether a list of arguments is a command line the `fraudstream` CLI accepts, for tests
of files that name commands (compose, Kubernetes manifests)."""

from __future__ import annotations

from fraudstream.cli import build_parser


def refusal(argv: list[str]) -> str | None:
    """None when ``fraudstream ARGV`` is a valid command line, else why not."""
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        return f"fraudstream {' '.join(argv)} is refused (exit {exc.code})"
    return None
