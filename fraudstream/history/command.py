"""``fraudstream backfill``: a history into the online store, with progress and a summary."""

from __future__ import annotations

import argparse
import time

import redis

from fraudstream.errors import ConfigError, ServiceError
from fraudstream.features.backfill import WriteSummary, build_states, write_states
from fraudstream.progress import progress_bar
from fraudstream.security import feature_state_store
from fraudstream.settings import Settings, redact_url
from fraudstream.stream.events import Rejected, parse_timestamp

STAGES = {"reading": "reading and checking", "building": "building states",
          "writing": "writing to Redis"}
WRITE_TIMEOUT_S = 5.0  # a bulk write of 2,000 keys, not the worker's per-batch budget


def until_ms(text: str | None) -> int | None:
    """``--until``: RFC 3339 or epoch milliseconds, as event times are written."""
    if text is None:
        return None
    try:
        return parse_timestamp(int(text) if text.isdigit() else text, "--until")
    except Rejected as exc:
        raise ConfigError(exc.reason) from None


def check_arguments(args: argparse.Namespace) -> None:
    if (args.input is None) == (not args.from_topics):
        raise ConfigError("give a history file or --from-topics, not both and not neither")
    if not args.from_topics:
        for flag, value in (("--until", args.until), ("--commit-group", args.commit_group)):
            if value:
                raise ConfigError(f"{flag} needs --from-topics")
    elif args.commit_group and args.until is None:
        raise ConfigError("--commit-group needs --until T: the topics' end moves while "
                          "producers run, and the cut must be the same for both topics")
    elif args.rejects is not None:
        raise ConfigError("--rejects is for a history file (the workers dead-letter "
                          "rejected records of the topics)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    check_arguments(args)
    cut = until_ms(args.until)
    if args.from_topics and not settings.kafka_bootstrap:
        raise ConfigError("no broker configured: set FRAUDSTREAM_KAFKA_BOOTSTRAP")
    store = feature_state_store(settings, timeout_s=WRITE_TIMEOUT_S)
    started = time.perf_counter()
    lines: list[str] = []
    replay = None
    with progress_bar(args.input, STAGES) as progress:
        if args.from_topics:
            from fraudstream.history.topics import replay_topics

            replay = replay_topics(settings, cut, progress=progress)
            history = replay.history
            lines.append(f"replayed {len(history.transactions):,} transactions and "
                         f"{len(history.labels):,} labels"
                         + (f" up to {args.until}" if args.until else " to the topics' end")
                         + _skipped(replay.rejected))
        else:
            from fraudstream.history.files import read_history

            read = read_history(args.input, args.rejects, progress)
            history = read.history
            lines.append(f"read {len(history.transactions):,} transactions of {read.rows:,} "
                         f"rows ({int(history.labels.is_fraud.sum()):,} frauds) from "
                         f"{args.input}; guards: "
                         + ("the file's partition and offset columns" if read.coordinates
                            else "none (no partition/offset columns: start the workers "
                                 "after the history)"))
            if read.rejected:
                lines.append(f"rejected {read.rejected:,} rows (reasons in {read.rejects})")
            if read.later_labels:
                lines.append(f"left {read.later_labels:,} labels confirmed after the "
                             f"history's end for the labels topic")
        states = build_states(history, settings.redis_prefix, settings.feature_ttl_days,
                              progress)
        try:
            summary = write_states(store, states, settings.redis_prefix,
                                   settings.feature_ttl_days, progress)
        except redis.RedisError as exc:
            raise ServiceError(f"Redis at {redact_url(settings.redis_url)}: "
                               f"{str(exc).rstrip('.')}; nothing "
                               f"is lost: run the same backfill again when it answers "
                               f"(keys already written are kept)") from None
    lines.append(_written(summary, time.perf_counter() - started))
    if args.commit_group and replay is not None:
        from fraudstream.history.topics import commit_cut

        commit_cut(settings, replay)
        cuts = ", ".join(f"{topic} " + " ".join(f"{p}:{o}" for p, o in sorted(c.items()))
                         for topic, c in replay.cuts.items())
        lines.append(f"committed group {settings.group_id} at the cut: {cuts}")
    for line in lines:
        print(line)
    return 0


def _skipped(rejected: dict[str, int]) -> str:
    skipped = {t: n for t, n in rejected.items() if n}
    if not skipped:
        return ""
    return "; skipped " + ", ".join(f"{n:,} rejected records of {t}"
                                    for t, n in skipped.items())


def _written(summary: WriteSummary, seconds: float) -> str:
    line = (f"backfilled {summary.keys:,} keys in {seconds:.1f}s: {summary.written:,} "
            f"written, {summary.unchanged:,} already up to date")
    if summary.replaced:
        line += (f", {summary.replaced:,} replaced (states written since the store lost its "
                 f"data, whose events the rebuild counts too)")
    if summary.kept:
        line += (f", {summary.kept:,} kept as they were (they may count events this "
                 f"backfill did not read: run it again, or empty the prefix first)")
    return line
