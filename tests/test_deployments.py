"""prefect.yaml and the deployments `up` serves declare the same flows and schedules."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from flows.serve import schedules
from hub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_prefect_yaml_matches_the_served_deployments() -> None:
    declared = {
        d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }
    served = schedules(Settings())
    assert set(declared) == set(served)
    for name, (flow_, schedule, parameters, description) in served.items():
        d = declared[name]
        path, function = d["entrypoint"].split(":")
        module = path.removesuffix(".py").replace("/", ".")
        assert getattr(importlib.import_module(module), function) is flow_
        assert d.get("parameters", {}) == parameters and d["description"] == description
        yaml_schedules = d.get("schedules", [])
        if schedule is None:
            assert yaml_schedules == []
        elif schedule.cron:
            assert yaml_schedules == [{"cron": schedule.cron, "timezone": schedule.timezone}]
        else:
            assert yaml_schedules == [{"interval": int(schedule.interval.total_seconds())}]
