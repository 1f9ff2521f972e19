"""The example Grafana dashboard and alert rules parse, and use only what runnel exports.

A renamed metric or label would leave a dashboard panel silently empty and an alert
silently quiet; these tests turn that into a failure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from runnel.domain.metrics import CATALOGUE, spec_of_sample

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "examples" / "observability" / "grafana-dashboard.json"
ALERTS = ROOT / "examples" / "observability" / "alerts.yaml"
DOC = ROOT / "docs" / "observability.md"

# Labels a query may name besides the metrics' own: the histogram bucket bound, and the
# target labels Prometheus adds to every scraped series.
TARGET_LABELS = {"le", "instance", "job"}
KNOWN_LABELS = {label for spec in CATALOGUE.values() for label in spec.labels} | TARGET_LABELS

REQUIRED_ALERTS = {
    "RunnelLagGrowing",
    "RunnelPartitionStuck",
    "RunnelNoLeader",
    "RunnelWorkerHalted",
    "RunnelFencedRefusalsRising",
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_queries() -> list[str]:
    queries = [
        target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])
    ]
    assert queries, "the dashboard has no query"
    return queries


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def metrics_in(query: str) -> set[str]:
    """The runnel sample names a PromQL query selects."""
    return set(re.findall(r"\brunnel_[a-z0-9_]+\b", query))


def labels_in(query: str) -> set[str]:
    """Label names in grouping clauses (by, without, on, ignoring, group_*) and selectors."""
    names: set[str] = set()
    for clause in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", query
    ):
        names.update(name.strip() for name in clause.split(",") if name.strip())
    for selector in re.findall(r"\{([^}]*)\}", query):
        names.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector))
    return names


def test_the_dashboard_is_grafana_json_with_a_data_source_and_an_app_variable() -> None:
    data = dashboard()
    assert data["title"] == "runnel"
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert "runnel_build_info" in variables["app"]["definition"]
    ids = [panel["id"] for panel in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24


@pytest.mark.parametrize("query", dashboard_queries())
def test_every_dashboard_query_uses_exported_metrics_and_labels(query: str) -> None:
    used = metrics_in(query)
    assert used, f"no runnel metric in {query!r}"
    for sample in used:
        spec_of_sample(sample)  # KeyError: not exported
    assert labels_in(query) <= KNOWN_LABELS
    assert 'app=~"$app"' in query, "every panel follows the app variable"


# Shown by the alerts, or by the dashboard's app variable, rather than in a panel.
NOT_PLOTTED = {
    "runnel_build_info",
    "runnel_worker_halted",
    "runnel_worker_start_time_seconds",
    "runnel_partitions_assigned",
}


def test_the_dashboard_plots_every_other_metric() -> None:
    shown = {spec_of_sample(s).name for q in dashboard_queries() for s in metrics_in(q)}
    assert set(CATALOGUE) - NOT_PLOTTED - shown == set()


def test_the_alert_rules_cover_the_required_alerts() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_rule_is_complete_and_uses_exported_metrics(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]
    if "for" in rule:
        assert re.fullmatch(r"\d+[smh]", rule["for"])
    used = metrics_in(expr)
    assert used
    for sample in used:
        spec_of_sample(sample)
    labels = labels_in(expr)
    assert labels <= KNOWN_LABELS
    # An annotation can only show labels the expression keeps.
    shown = set(re.findall(r"\$labels\.([a-z_]+)", json.dumps(rule["annotations"])))
    assert shown <= labels


def test_the_documentation_lists_every_metric_and_alert() -> None:
    text = DOC.read_text()
    for name in CATALOGUE:
        assert f"`{name}`" in text, f"{name} is not documented"
    for rule in alert_rules():
        assert f"`{rule['alert']}`" in text
    assert "path: /healthz" in text
    assert "path: /readyz" in text
