"""Every metric a dashboard panel or an alert rule queries is one our processes export.

The exported names come from ``WorkerMetrics.create`` (``fraudstream worker``) and
``QualityMetrics.create`` (``fraudstream monitor``: live quality) themselves, with the
suffixes prometheus_client adds (``_total`` for counters, ``_bucket``/``_sum``/``_count``
for histograms, ``_info`` for infos), so a renamed metric breaks this test, not a
dashboard in production. Metric names are pulled out of PromQL by a small tokenizer: strings,
label matchers, ranges, grouping clauses, numbers and Grafana variables are removed;
an identifier followed by ``(`` must be a PromQL function; any other identifier that is
not a keyword is a metric name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from fraudstream.stream.metrics import QualityMetrics, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"

AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
})
FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "end", "exp", "floor", "histogram_avg", "histogram_count",
    "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar",
    "histogram_sum", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
    "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
    "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar",
    "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc",
    "sqrt", "start", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh",
    "time", "timestamp", "vector", "year",
}) | AGGREGATIONS
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and",
                      "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
# Series Prometheus writes itself for every scrape target.
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped",
                           "scrape_samples_post_metric_relabeling", "scrape_series_added"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|\w+)")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NUMBER = re.compile(r"(?<![\w:.])(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
                     r"(?:ms|[smhdwy])*(?![\w:])")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def exported_metric_names() -> frozenset[str]:
    """Every series name the worker's and the monitor's /metrics can show."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "info": ("_info",), "gauge": ("",)}
    names = set()
    for metrics in (WorkerMetrics, QualityMetrics):
        registry = CollectorRegistry()
        metrics.create(registry)
        for family in registry.collect():
            assert family.type in suffixes, f"{family.name}: type {family.type} not handled"
            names.update(family.name + suffix for suffix in suffixes[family.type])
    return frozenset(names)


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, unknown functions) that a PromQL expression refers to."""
    text = _STRING.sub(" ", expr)
    text = _VARIABLE.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    metrics: set[str] = set()
    unknown_functions: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        if text[match.end():].lstrip().startswith("("):
            if name not in FUNCTIONS:
                unknown_functions.add(name)
        elif name not in KEYWORDS:
            metrics.add(name)
    return metrics, unknown_functions


def unknown_references(expr: str, exported: frozenset[str]) -> list[str]:
    metrics, functions = promql_names(expr)
    problems = [f"metric {name!r} is not exported by the worker or the monitor"
                for name in sorted(metrics - exported - SCRAPE_SERIES)]
    problems += [f"{name!r} is not a PromQL function" for name in sorted(functions)]
    return problems


def dashboard_panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested panels included."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_expressions(path: Path) -> list[tuple[str, str]]:
    """(panel title, expr) of every query target of a dashboard."""
    dashboard = json.loads(path.read_text())
    return [(panel.get("title", "?"), target["expr"])
            for panel in dashboard_panels(dashboard)
            for target in panel.get("targets", []) if target.get("expr")]


def rule_expressions(text: str) -> dict[str, str]:
    """Alert (or recording rule) name -> expr, from a Prometheus rule file.

    A reader for the shape of our rule files (no YAML parser in the environment):
    ``expr:`` is an inline scalar or a ``|``/``>`` block under ``- alert:``/``- record:``.
    """
    lines = text.splitlines()
    rules: dict[str, str] = {}
    name = None
    for i, line in enumerate(lines):
        head = re.match(r"^\s*-\s+(?:alert|record):\s*(\S+)\s*$", line)
        if head:
            name = head.group(1)
            continue
        found = re.match(r"^(\s*)expr:\s*(.*?)\s*$", line)
        if not found:
            continue
        assert name is not None, f"line {i + 1}: expr outside a rule"
        assert name not in rules, f"rule {name} has two exprs"
        indent, value = len(found.group(1)), found.group(2)
        if value[:1] in ("|", ">"):
            block = []
            for following in lines[i + 1:]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following.strip())
            value = " ".join(part for part in block if part)
        elif value[:1] in ("'", '"'):
            value = value[1:-1]
        rules[name] = value
    return rules


# -- the checker itself ------------------------------------------------------------------

def test_exported_names_carry_the_client_suffixes() -> None:
    exported = exported_metric_names()
    assert {"fraudstream_events_total", "fraudstream_decisions_total",
            "fraudstream_event_latency_seconds_bucket", "fraudstream_stage_latency_seconds_sum",
            "fraudstream_end_to_end_latency_seconds_count", "fraudstream_model_info",
            "fraudstream_consumer_lag", "fraudstream_feature_psi",
            "fraudstream_live_quality"} <= exported
    assert "fraudstream_events" not in exported
    assert "fraudstream_event_latency_seconds" not in exported


def test_tokenizer_finds_metrics_and_only_metrics() -> None:
    expr = ('histogram_quantile(0.99, sum by (instance, le) (rate('
            'fraudstream_event_latency_seconds_bucket{job="fraudstream-worker", '
            'stage=~"score|features"}[$__rate_interval] offset 1m))) > 1e-3 '
            'and on (instance) max_over_time(fraudstream_feature_store_up[5m:30s]) == bool 1 '
            'or label_replace(up{instance!~"x (y)"}, "a", "$1", "b", "(.*)") / 2.5 '
            '+ sum(rate(fraudstream_decisions_total[${window}])) without (outcome)')
    metrics, functions = promql_names(expr)
    assert metrics == {"fraudstream_event_latency_seconds_bucket",
                       "fraudstream_feature_store_up", "up", "fraudstream_decisions_total"}
    assert functions == set()


@pytest.mark.parametrize(("expr", "problem"), [
    ("sum(rate(fraudstream_event_total[5m]))", "fraudstream_event_total"),  # misspelt
    ("sum(rate(fraudstream_decisions[5m]))", "fraudstream_decisions"),  # no _total
    ("histogram_quantile(0.99, rate(fraudstream_event_latency_seconds[5m]))",
     "fraudstream_event_latency_seconds"),  # no _bucket
    ("fraudstream_events_bucket", "fraudstream_events_bucket"),  # a counter has no buckets
    ("histogram_quantil(0.5, rate(fraudstream_batch_size_bucket[5m]))",
     "histogram_quantil"),  # misspelt function
])
def test_checker_reports_what_nothing_exports(expr: str, problem: str) -> None:
    problems = unknown_references(expr, exported_metric_names())
    assert len(problems) == 1 and problem in problems[0], problems


def test_rule_reader_reads_inline_and_block_exprs() -> None:
    text = (
        "groups:\n  - name: g\n    rules:\n"
        "      - alert: A\n        expr: up == 0\n        for: 1m\n"
        "      - alert: B\n        expr: |\n          sum(x)\n            / sum(y)\n"
        "        labels:\n          severity: warning\n"
        "      - record: job:z:rate5m\n        expr: 'rate(z[5m])'\n")
    assert rule_expressions(text) == {"A": "up == 0", "B": "sum(x) / sum(y)",
                                      "job:z:rate5m": "rate(z[5m])"}


# -- the dashboards ----------------------------------------------------------------------

def test_there_is_a_dashboard() -> None:
    assert "fraudstream.json" in [p.name for p in DASHBOARDS]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_only_exported_metrics(path: Path) -> None:
    exported = exported_metric_names()
    expressions = dashboard_expressions(path)
    assert expressions, f"{path.name} has no queries"
    problems = [f"{title}: {problem}" for title, expr in expressions
                for problem in unknown_references(expr, exported)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_panels_are_wired_to_the_provisioned_datasource(path: Path) -> None:
    provisioned = set(re.findall(r"^\s*uid:\s*(\S+)\s*$",
                                 "".join(p.read_text() for p in DATASOURCES.glob("*.yml")),
                                 re.MULTILINE))
    assert provisioned, "no datasource uid provisioned"
    dashboard = json.loads(path.read_text())
    assert dashboard.get("uid") and dashboard.get("title")
    panels = dashboard_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] in ("row", "text"):
            continue
        assert panel.get("targets"), f"{panel['title']}: no query"
        for target in [panel, *panel["targets"]]:
            uid = target.get("datasource", {}).get("uid")
            assert uid in provisioned, f"{panel['title']}: datasource {uid!r}"


def test_main_dashboard_covers_the_worker_signals() -> None:
    used = set()
    for _title, expr in dashboard_expressions(DASHBOARDS[0].parent / "fraudstream.json"):
        used |= promql_names(expr)[0]
    wanted = {
        "fraudstream_stage_latency_seconds_bucket", "fraudstream_event_latency_seconds_bucket",
        "fraudstream_end_to_end_latency_seconds_bucket", "fraudstream_events_total",
        "fraudstream_decisions_total", "fraudstream_consumer_lag",
        "fraudstream_degraded_decisions_total", "fraudstream_dead_letters_total",
        "fraudstream_feature_psi", "fraudstream_live_quality", "fraudstream_model_info",
        "fraudstream_budget_misses_total", "fraudstream_feature_store_up",
    }
    assert not wanted - used, f"no panel shows {sorted(wanted - used)}"


# -- the alert rules ---------------------------------------------------------------------

def test_alert_rules_query_only_exported_metrics() -> None:
    text = ALERTS.read_text()
    rules = rule_expressions(text)
    assert len(rules) == len(re.findall(r"^\s*-\s+(?:alert|record):", text, re.MULTILINE))
    assert all(rules.values()), "a rule with an empty expr"
    exported = exported_metric_names()
    problems = [f"{name}: {problem}" for name, expr in rules.items()
                for problem in unknown_references(expr, exported)]
    assert not problems, "\n".join(problems)


def test_every_alert_has_a_severity_and_tells_the_on_call_what_to_check() -> None:
    blocks = re.split(r"^\s*-\s+alert:\s*", ALERTS.read_text(), flags=re.MULTILINE)[1:]
    assert blocks
    for block in blocks:
        name = block.split()[0]
        severity = re.search(r"^\s+severity:\s*(\w+)\s*$", block, re.MULTILINE)
        assert severity and severity.group(1) in ("warning", "critical"), name
        assert re.search(r"^\s+summary:\s*\S", block, re.MULTILINE), name
        description = re.search(r"^\s+description:\s*>-?\n((?:\s{12,}.*\n?)+)", block,
                                re.MULTILINE)
        assert description and "check" in description.group(1).lower(), name
