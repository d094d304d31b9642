"""The ``fraudstream`` command. Every failure ends with one readable line and exit != 0."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from fraudstream.errors import ConfigError, FraudstreamError, ServiceError
from fraudstream.extras import absent_module, install_hint
from fraudstream.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from fraudstream.simulator.streamer import StreamStats

Handler = Callable[[argparse.Namespace, Settings], int]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port in 1..65535")
    return value


def iso_date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a date like 2018-04-01") from None


def _add_population(p: argparse.ArgumentParser, customers: int = 5000,
                    terminals: int = 10000, days: int = 183) -> None:
    p.add_argument("--customers", type=positive_int, default=customers)
    p.add_argument("--terminals", type=positive_int, default=terminals)
    p.add_argument("--days", type=positive_int, default=days, help="simulated days")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=iso_date, default=None,
                   help="first simulated day (default 2018-04-01 for files; for streams, "
                        "as many days before today as the stream needs)")
    p.add_argument("--amount-scale", type=positive_float, default=1.0,
                   help="inject drift: every genuine amount times this")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="fraudstream", description="Real-time fraud scoring on Kafka.")
    parser.add_argument("--log-format", choices=["text", "json"], default=None)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        default=None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    topics = sub.add_parser("topics", help="manage the project's topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True,
                                       parser_class=OneLineParser)
    create = topics_sub.add_parser("create", help="create all topics (idempotent)")
    create.add_argument("--partitions", type=positive_int, default=4)
    create.add_argument("--replication", type=positive_int, default=1)
    create.set_defaults(handler=cmd_topics_create)

    simulate = sub.add_parser("simulate", help="simulate transactions to a file or a topic")
    _add_population(simulate)
    target = simulate.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="write a Parquet (or .csv) dataset")
    target.add_argument("--rate", type=positive_float, help="stream events per second")
    simulate.add_argument("--duration", type=positive_float, default=10.0,
                          help="seconds to stream (with --rate)")
    simulate.add_argument("--label-delay", type=float, default=5.0,
                          help="seconds before a transaction's label is sent")
    simulate.add_argument("--labels", choices=["all", "fraud", "none"], default="all")
    simulate.add_argument("--handbook", action="store_true",
                          help="with --out: the fraud-detection handbook's reference dataset, "
                               "transaction for transaction (5,000 customers, 10,000 "
                               "terminals, 183 days from 2018-04-01; the population options "
                               "are ignored)")
    simulate.add_argument("--first-day", type=int, default=0,
                          help="with --rate: stream from this simulated day on; the days "
                               "before it are history (materialized by `backfill`)")
    simulate.add_argument("--profile", choices=["flat", "daily"], default="flat",
                          help="with --rate: a steady rate, or a day compressed into "
                               "--duration (quiet night, ramp, a peak at 4x the rate)")
    simulate.set_defaults(handler=cmd_simulate)

    train = sub.add_parser("train", help="train a model and register it as champion")
    _add_population(train)
    train.add_argument("--data", type=Path, help="train on this simulated Parquet/CSV file")
    train.add_argument("--model", choices=["hgb", "logreg"], default="hgb")
    train.add_argument("--registry", type=Path, default=None, help="model registry directory")
    train.add_argument("--no-promote", action="store_true", help="do not make it champion")
    train.set_defaults(handler=cmd_train)

    models = sub.add_parser("models", help="the model registry: list, promote, roll back, "
                                           "shadow")
    models.add_argument("--registry", type=Path, default=None,
                        help="model registry directory (default: FRAUDSTREAM_MODEL_DIR)")
    models_sub = models.add_subparsers(dest="models_command", required=True,
                                       parser_class=OneLineParser)
    models_sub.add_parser("list", help="every version, and which is champion or challenger")
    models_sub.add_parser("history", help="every promotion, rollback and challenger change")
    promote = models_sub.add_parser("promote", help="make VERSION the champion (workers "
                                                    "switch without a restart)")
    promote.add_argument("version")
    models_sub.add_parser("rollback", help="restore the champion before the current one")
    sign = models_sub.add_parser("sign", help="sign VERSION's manifest with "
                                              "FRAUDSTREAM_MODEL_SIGNING_KEY (or --key)")
    sign.add_argument("version")
    sign.add_argument("--key", type=Path, default=None, help="Ed25519 private key (PEM)")
    keygen = models_sub.add_parser("keygen", help="make an Ed25519 signing key pair: "
                                                  "NAME.pem (0600) and NAME.pub.pem")
    keygen.add_argument("private", type=Path)
    shadow = models_sub.add_parser("shadow", help="score VERSION in shadow beside the "
                                                  "champion (--off: stop)")
    shadow_target = shadow.add_mutually_exclusive_group(required=True)
    shadow_target.add_argument("version", nargs="?")
    shadow_target.add_argument("--off", action="store_true", help="stop shadow scoring")
    models.set_defaults(handler=cmd_models)

    worker = sub.add_parser("worker", help="consume transactions and publish decisions")
    worker.add_argument("--max-batch", type=positive_int, default=None)
    worker.add_argument("--metrics-port", type=int, default=None)
    worker.add_argument("--emit-features", action="store_true", default=None,
                        help="include the scored feature vector in each decision")
    worker.add_argument("--exactly-once", action="store_true", default=None,
                        help="a transactional producer per process: decisions and input "
                             "offsets commit together, for read_committed readers")
    worker.add_argument("--processes", type=positive_int, default=1,
                        help="worker processes in this consumer group on this host "
                             "(each one core; replicas elsewhere join the same group)")
    worker.add_argument("--status-dir", type=Path, default=None,
                        help="with --processes: where each replica writes its status file")
    worker.set_defaults(handler=cmd_worker)

    monitor = sub.add_parser("monitor", help="live model quality: decisions joined with "
                                             "confirmed labels, as Prometheus metrics")
    monitor.add_argument("--metrics-port", type=int, default=None)
    monitor.add_argument("--window", type=positive_int, default=5000,
                         help="labelled decisions the measures are computed over")
    monitor.add_argument("--max-decisions", type=positive_int, default=200_000,
                         help="without Redis: decisions kept in memory while their labels "
                              "are awaited")
    monitor.add_argument("--label-horizon-days", type=positive_float, default=30.0,
                         help="with Redis: how long a decision waits for its label (and a "
                              "label for its decision) before it expires")
    monitor.set_defaults(handler=cmd_monitor)

    top = sub.add_parser("top", help="live terminal view of the workers' metrics")
    top.add_argument("--metrics", action="append", default=[], metavar="URL",
                     help="a worker's metrics URL (repeatable)")
    top.add_argument("--port", action="append", type=int, default=[],
                     help="a worker's metrics port on this host (repeatable)")
    top.add_argument("--interval", type=positive_float, default=1.0)
    top.add_argument("--once", action="store_true", help="print one view and exit")
    top.add_argument("--png", type=Path, default=None,
                     help="with --once: also save the view as a PNG")
    top.set_defaults(handler=cmd_top)

    health = sub.add_parser("health", help="exit 0 if a worker is working, 1 with the reason "
                                           "if not (for liveness and readiness probes)")
    health.add_argument("--ready", action="store_true",
                        help="readiness: also in its consumer group, holding input "
                             "partitions (or standing by when workers outnumber them)")
    health.add_argument("--status-file", type=Path, default=None,
                        help="the worker's status file (default: FRAUDSTREAM_STATUS_FILE)")
    health.add_argument("--max-age", type=positive_float, default=10.0,
                        help="seconds without a status write before the worker counts as hung")
    health.add_argument("--max-stall", type=positive_float, default=30.0,
                        help="seconds without a processed batch while events wait")
    health.add_argument("--max-broker-silence", type=positive_float, default=30.0,
                        help="seconds without an answer from any broker")
    health.set_defaults(handler=cmd_health)

    demo = sub.add_parser("demo", help="everything on embedded services, with a live view")
    demo.add_argument("--duration", type=positive_float, default=30.0)
    demo.add_argument("--rate", type=positive_float, default=1000.0)
    demo.add_argument("--partitions", type=positive_int, default=4)
    demo.add_argument("--customers", type=positive_int, default=2000)
    demo.add_argument("--amount-scale", type=positive_float, default=1.0,
                      help="inject drift: every genuine amount of the stream times this "
                           "(the history stays as trained)")
    demo.add_argument("--autoscale", action="store_true",
                      help="a pool of workers scaled on consumer lag, the simulator on a "
                           "daily curve (--rate is the base; the peak is 4x)")
    demo.add_argument("--min-workers", type=positive_int, default=None,
                      help="with --autoscale: fewest workers (default 1; most: --partitions)")
    demo.add_argument("--target-lag", type=positive_int, default=None,
                      help="with --autoscale: lag per worker, in events, above which workers "
                           "are added (default: half a second of --rate)")
    demo.set_defaults(handler=cmd_demo)

    bench = sub.add_parser("bench", help="measure throughput, latency and memory")
    bench.add_argument("--quick", action="store_true", help="smaller runs, under two minutes")
    bench.add_argument("--only", action="append",
                       choices=["pipeline", "stages", "memory", "backfill", "http", "model"],
                       help="run only this section (repeatable)")
    bench.add_argument("--tune-model", action="store_true",
                       help="with the model section: also choose features, our model's "
                            "settings and its calibration on the validation window, report "
                            "the gain of each change and add their rows (minutes more)")
    bench.add_argument("--out", type=Path, default=Path("bench-results"))
    bench.set_defaults(handler=cmd_bench)

    # -- batch scoring and ONNX export ---------------------------------------------
    score_file = sub.add_parser("score-file", help="score a Parquet or CSV file of "
                                                   "transactions as the stream would")
    score_file.add_argument("input", type=Path, help="transactions (.parquet or .csv)")
    score_file.add_argument("-o", "--output", type=Path, required=True,
                            help="decisions (.parquet or .csv)")
    score_file.add_argument("--rejects", type=Path, default=None,
                            help="rejected rows and ignored labels, with the reason "
                                 "(default: OUTPUT with .rejects before the extension)")
    score_file.add_argument("--version", default=None,
                            help="model version (default: the champion)")
    score_file.add_argument("--registry", type=Path, default=None,
                            help="model registry directory")
    score_file.add_argument("--ignore-labels", action="store_true",
                            help="score as a worker that received no labels")
    score_file.add_argument("--sort-by-time", action="store_true",
                            help="score the rows in event-time order, not file order")
    score_file.set_defaults(handler=cmd_score_file)

    backfill = sub.add_parser(
        "backfill", help="materialize a history into the feature store (from a file or "
                         "the topics), exactly as the workers would have built it")
    backfill.add_argument("input", type=Path, nargs="?", default=None,
                          help="history: transactions and labels (.parquet or .csv, as "
                               "score-file reads; optional partition and offset columns)")
    backfill.add_argument("--from-topics", action="store_true",
                          help="replay the transactions and labels topics instead")
    backfill.add_argument("--until", default=None,
                          help="with --from-topics: the history's end T (RFC 3339 or epoch "
                               "ms); default: the topics' end")
    backfill.add_argument("--commit-group", action="store_true",
                          help="with --from-topics --until T: commit the workers' groups at T, so "
                               "workers started next continue right after the history")
    backfill.add_argument("--rejects", type=Path, default=None,
                          help="rejected rows of the file, with the reason (default: INPUT "
                               "with .rejects before the extension)")
    backfill.set_defaults(handler=cmd_backfill)

    export_onnx = sub.add_parser("export-onnx", help="write a model as ONNX for edge use")
    export_onnx.add_argument("--version", default=None,
                             help="model version (default: the champion)")
    export_onnx.add_argument("-o", "--output", type=Path, default=None,
                             help="ONNX file (default: model.onnx in the model's artifact, "
                                  "registered in its manifest)")
    export_onnx.add_argument("--registry", type=Path, default=None,
                             help="model registry directory")
    export_onnx.set_defaults(handler=cmd_export_onnx)

    serve = sub.add_parser("serve", help="the HTTP scoring API (also SageMaker's `serve`, "
                                         "Vertex AI's AIP_* routes)")
    serve.add_argument("--host", default=None, help="address (default FRAUDSTREAM_HTTP_HOST, "
                                                    "0.0.0.0)")
    serve.add_argument("--port", type=port_number, default=None,
                       help="port (default AIP_HTTP_PORT or SAGEMAKER_BIND_TO_PORT when set, "
                            "else FRAUDSTREAM_HTTP_PORT, 8080)")
    serve.add_argument("--workers", type=positive_int, default=None,
                       help="server processes (default FRAUDSTREAM_HTTP_WORKERS, 1)")
    serve.set_defaults(handler=cmd_serve)

    api_key = sub.add_parser("api-key", help="make and revoke API keys of the HTTP scorer")
    api_key_sub = api_key.add_subparsers(dest="api_key_command", required=True,
                                         parser_class=OneLineParser)
    key_create = api_key_sub.add_parser("create", help="make a key: prints it once, and "
                                                       "the line for the keys file")
    key_create.add_argument("name")
    key_create.add_argument("--file", type=Path, default=None,
                            help="also add the line to this keys file")
    key_create.set_defaults(handler=cmd_api_key_create)
    key_revoke = api_key_sub.add_parser("revoke", help="mark a key revoked in a keys file")
    key_revoke.add_argument("name")
    key_revoke.add_argument("--file", type=Path, default=None,
                            help="the keys file (default FRAUDSTREAM_API_KEYS_FILE)")
    key_revoke.set_defaults(handler=cmd_api_key_revoke)

    compose_secrets = sub.add_parser("compose-secrets", help="make the compose stack's "
                                     "secrets under ROOT once, printing them once")
    compose_secrets.add_argument("root", type=Path)
    compose_secrets.set_defaults(handler=cmd_compose_secrets)

    services = sub.add_parser("services", help="run embedded Kafka and Redis until Ctrl-C")
    services.set_defaults(handler=cmd_services)

    config = sub.add_parser("config", help="list every FRAUDSTREAM_ setting")
    config.set_defaults(handler=cmd_config)
    return parser


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.topics import create_topics

    _require_broker(settings)
    for result in create_topics(settings, args.partitions, args.replication):
        state = "created" if result.created else "exists"
        print(f"{result.name}: {result.partitions} partitions ({state})")
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.simulator.generator import SimulationConfig, simulate

    if args.handbook:
        return _simulate_handbook(args)
    if args.out is not None:
        config = _population(args, args.start)
        frame = simulate(config)
        _write_frame(frame, args.out)
        print(f"wrote {len(frame)} transactions ({int(frame['is_fraud'].sum())} frauds) "
              f"over {config.days} days to {args.out}")
        return 0
    from fraudstream.simulator.streamer import planned_events, rate_profile, stream, stream_days

    _require_broker(settings)
    profile = rate_profile(args.profile, args.duration)
    events = planned_events(args.rate, args.duration, profile)
    if args.first_day >= args.days:
        raise ConfigError(f"--first-day {args.first_day} leaves none of the {args.days} "
                          f"simulated days to stream")
    start = args.start or _days_ago(args.first_day
                                    + stream_days(events, args.customers,
                                                  args.days - args.first_day))
    stats = _with_progress(
        "streaming", lambda progress: stream(
            settings, SimulationConfig(customers=args.customers, terminals=args.terminals,
                                       days=args.days, seed=args.seed, start=start,
                                       amount_scale=args.amount_scale),
            args.rate, args.duration, args.label_delay, args.labels, progress=progress,
            profile=profile, first_day=args.first_day),
        total=events)
    print(f"sent {stats.transactions} transactions ({stats.frauds} frauds) and "
          f"{stats.labels} labels in {stats.elapsed_s:.1f}s ({stats.rate:.0f}/s)")
    return 0


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Parquet, or CSV when the name ends in .csv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _simulate_handbook(args: argparse.Namespace) -> int:
    from fraudstream.simulator.handbook import simulate_handbook

    if args.out is None:
        raise ConfigError("--handbook writes a file: give --out")
    frame, counts = simulate_handbook()
    _write_frame(frame, args.out)
    print(f"wrote the handbook's reference dataset: {len(frame)} transactions "
          f"({int(frame['is_fraud'].sum())} frauds; scenarios 1/2/3: "
          f"{'/'.join(map(str, counts.labelled))}) to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd

    from fraudstream.models.train import train

    if args.data is not None:
        try:
            frame = (pd.read_csv(args.data) if args.data.suffix.lower() == ".csv"
                     else pd.read_parquet(args.data))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {args.data}: {exc}") from None
    else:
        from fraudstream.simulator.generator import simulate

        frame = simulate(_population(args, args.start))
    registry = args.registry or Path(settings.model_dir)
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("training") as status:
        result = train(frame, registry, kind=args.model, seed=args.seed,
                       promote=not args.no_promote, progress=status.update)
    _print_metrics(result.metrics)
    print(f"model {result.version} written to {result.path}"
          + ("" if args.no_promote else " (champion)"))
    days = result.calibration["chosen_on_days"]["test"]
    method = result.calibration["method"]
    print(f"calibration chosen on validation days {days[0]}..{days[1]}: "
          + (f"{method} ({len(result.calibration['scores'])} knots)" if method != "none"
             else "none (the model's probabilities did best)"))
    print(f"thresholds: review >= {result.thresholds['review']:.4f}, "
          f"decline >= {result.thresholds['decline']:.4f}")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream import model_commands

    root = args.registry or Path(settings.model_dir)
    command = args.models_command
    if command == "list":
        return model_commands.list_versions(root)
    if command == "history":
        return model_commands.show_history(root)
    if command == "promote":
        return model_commands.promote(root, args.version)
    if command == "rollback":
        return model_commands.rollback(root)
    if command == "sign":
        return model_commands.sign(root, args.version, args.key)
    if command == "keygen":
        return model_commands.keygen(args.private)
    return model_commands.shadow(root, None if args.off else args.version)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.stream.app import require_services, run_worker

    settings = settings.replace(**{k: v for k, v in {
        "max_batch": args.max_batch, "metrics_port": args.metrics_port,
        "emit_features": args.emit_features,
        "exactly_once": args.exactly_once}.items() if v is not None})
    if args.processes > 1 or args.status_dir is not None:
        from fraudstream.models.registry import Registry
        from fraudstream.stream.supervisor import run_pool

        # Fail here in one line, not once per replica and restart.
        require_services(settings)
        Registry(settings.model_dir).load_champion()
        return run_pool(settings, args.processes, args.status_dir)
    return run_worker(settings)


def _development_keys(settings: Settings) -> Settings:
    """``settings`` for a command that trains the models it runs (the demo, the
    benchmark): development keys unless real ones are configured. Called after the
    command's imports, so that a missing extra is still one line, before any warning."""
    from fraudstream import model_trust

    if settings.model_public_keys:
        return settings
    settings = settings.replace(dev_keys=True)
    model_trust.configure(settings)
    return settings


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.demo import run_autoscale_demo, run_demo

    settings = _development_keys(settings)
    if args.autoscale:
        min_workers = args.min_workers or 1
        if min_workers > args.partitions:
            raise ConfigError(f"--min-workers {min_workers} is more than the "
                              f"{args.partitions} partitions: a worker would sit idle")
        return run_autoscale_demo(settings, duration_s=args.duration, rate=args.rate,
                                  partitions=args.partitions, customers=args.customers,
                                  min_workers=min_workers,
                                  target_lag=args.target_lag or max(1, round(args.rate / 2)),
                                  amount_scale=args.amount_scale)
    if args.min_workers is not None or args.target_lag is not None:
        raise ConfigError("--min-workers and --target-lag need --autoscale")
    return run_demo(settings, duration_s=args.duration, rate=args.rate,
                    partitions=args.partitions, customers=args.customers,
                    amount_scale=args.amount_scale)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.bench.runner import run

    return run(args.out, args.quick, args.only, _development_keys(settings),
               tune_model=args.tune_model)


def cmd_score_file(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.batch.command import run

    return run(args, settings)


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.history.command import run

    return run(args, settings)


def cmd_export_onnx(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.models.onnx_export import export_version

    done = export_version(args.registry or Path(settings.model_dir), args.version, args.output)
    print(f"{'already exported' if done.reused else 'wrote'} model {done.version} as ONNX: "
          f"{done.path} (sha256 {done.sha256[:16]}, metadata in {done.sidecar.name}); "
          f"onnxruntime within {done.max_difference:.1e} of scikit-learn"
          + ("; registered in the artifact's manifest" if done.registered else ""))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from fraudstream.stream.http.platforms import resolve_port
    from fraudstream.stream.http.server import serve

    port = resolve_port(args.port, settings.http_port, os.environ)
    return serve(settings, args.host or settings.http_host, port,
                 args.workers or settings.http_workers)


def cmd_api_key_create(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.stream.http.keys import create_key

    key, stored = create_key(args.name, args.file)
    print(f"API key {args.name}: {key}")
    print("  (shown once: only its hash is kept)")
    where = f"added to {args.file}" if args.file is not None else "keys file line"
    print(f"{where}: {stored.line()}")
    return 0


def cmd_compose_secrets(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream import compose_secrets

    return compose_secrets.run(args.root)


def cmd_api_key_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.stream.http.keys import revoke_in_file

    path = args.file or (Path(settings.api_keys_file) if settings.api_keys_file else None)
    if path is None:
        raise ConfigError("no keys file: pass --file or set FRAUDSTREAM_API_KEYS_FILE")
    revoked = revoke_in_file(path, args.name)
    print(f"revoked in {path}: {revoked.line()} (servers re-read the file within a second)")
    return 0


def cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from fraudstream import services

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with services.kafka_bootstrap(settings.kafka_bootstrap) as bootstrap, \
            services.redis_url(settings.redis_url) as redis_url:
        print(f"export FRAUDSTREAM_KAFKA_BOOTSTRAP={bootstrap}")
        print(f"export FRAUDSTREAM_REDIS_URL={redis_url}", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    from fraudstream.stream.monitor import run_monitor

    _require_broker(settings)
    if args.metrics_port is not None:
        settings = settings.replace(metrics_port=args.metrics_port)
    return run_monitor(settings, args.window, args.max_decisions, args.label_horizon_days)


def cmd_top(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from rich.console import Console
    from rich.live import Live

    from fraudstream import top

    ports = args.port or ([settings.metrics_port] if settings.metrics_port else [])
    urls = top.workers_from(args.metrics, ports)
    if not urls:
        raise ConfigError("no worker to watch: pass --metrics URL or --port P "
                          "(or set FRAUDSTREAM_METRICS_PORT)")
    before = top.scrape(urls)
    if before.workers_up == 0:
        raise ServiceError(f"no worker answers at {', '.join(urls)}")
    if args.once:
        time.sleep(args.interval)
        view = top.render(top.figures(before, top.scrape(urls)))
        Console().print(view)
        if args.png:
            top.save_png(view, str(args.png))
            print(f"saved {args.png}")
        return 0
    try:
        with Live(refresh_per_second=4) as live:
            while True:
                time.sleep(args.interval)
                after = top.scrape(urls)
                live.update(top.render(top.figures(before, after)))
                before = after
    except KeyboardInterrupt:
        return 0


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from fraudstream.stream.health import assess, assess_readiness
    from fraudstream.stream.status import read_status

    path = args.status_file or (Path(settings.status_file) if settings.status_file else None)
    if path is None:
        raise ConfigError("no status file: pass --status-file or set FRAUDSTREAM_STATUS_FILE")
    judge = assess_readiness if args.ready else assess
    verdict = judge(read_status(path), time.time(), args.max_age, args.max_stall,
                    args.max_broker_silence)
    words = ("ready: ", "not ready: ") if args.ready else ("healthy: ", "unhealthy: ")
    print((words[0] if verdict.healthy else words[1]) + verdict.reason)
    return 0 if verdict.healthy else 1


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    for name, default, doc in Settings.describe():
        print(f"{name:<40} {default:<22} {doc}")
    return 0


def _require_broker(settings: Settings) -> None:
    if not settings.kafka_bootstrap:
        raise ConfigError("no broker configured: set FRAUDSTREAM_KAFKA_BOOTSTRAP "
                          "(or run `fraudstream services` / `fraudstream demo`)")
# no-untyped-def: the simulator's config or the handbook's, which callers narrow
def _population(args: argparse.Namespace, start: datetime | None):  # type: ignore[no-untyped-def]
    from fraudstream.simulator.generator import HANDBOOK_START, SimulationConfig

    return SimulationConfig(customers=args.customers, terminals=args.terminals,
                            days=args.days, seed=args.seed, start=start or HANDBOOK_START,
                            amount_scale=args.amount_scale)


def _days_ago(days: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def _with_progress(label: str, work: Callable[..., StreamStats], total: float) -> StreamStats:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:.0f}/{task.total:.0f}"), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task(label, total=total)
        return work(lambda stats: bar.update(task, completed=stats.transactions))


def _print_metrics(metrics: dict[str, dict[str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="test-week metrics")
    for column in ("model", "ROC AUC", "average precision", "card precision@100"):
        table.add_column(column)
    for name, m in metrics.items():
        table.add_row(name, f"{m['roc_auc']:.4f}", f"{m['average_precision']:.4f}",
                      f"{m['card_precision_at_100']:.4f}")
    Console().print(table)


def _print_error(exc: BaseException) -> None:
    """One line on stderr, with every registered secret blanked out."""
    from fraudstream import logs

    text = " ".join(str(exc).split()) or type(exc).__name__
    print(f"fraudstream: error: {logs.scrub(text)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from confluent_kafka import KafkaException

    from fraudstream import logs, model_trust
    from fraudstream.models.artifact import ArtifactError

    parser = build_parser()
    args = parser.parse_args(argv)
    if (absent := absent_module(args.command)) is not None:
        print(f"fraudstream: {install_hint(absent, args.command)}", file=sys.stderr)
        return 1
    try:
        settings = Settings.from_env(log_format=args.log_format, log_level=args.log_level)
        logs.configure(settings.log_level, settings.log_format)
        for secret in settings.secrets():
            logs.register_secret(secret)
        model_trust.configure(settings)
        return int(args.handler(args, settings))
    except FraudstreamError as exc:
        _print_error(exc)
        return exc.exit_code
    except (ArtifactError, ValueError, KafkaException) as exc:
        _print_error(exc)
        return 1
    except ModuleNotFoundError as exc:
        hint = install_hint(exc, args.command)
        if hint is None:
            raise
        print(f"fraudstream: {hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fraudstream: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
