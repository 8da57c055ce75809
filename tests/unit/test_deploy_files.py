"""The Docker and observability files, checked as far as a machine without Docker can:
they parse, pin what they run, keep secrets out, and point at each other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PINNED_IMAGE = re.compile(r"^[\w./-]+:v?\d+(\.\d+)+(-[\w.-]+)?$")


def _yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def test_compose_pins_every_image_and_holds_no_password() -> None:
    compose = _yaml("docker-compose.yml")
    images = [s["image"] for s in compose["services"].values() if "image" in s]
    assert images
    assert all(PINNED_IMAGE.match(image) for image in images), images
    for service in compose["services"].values():
        for name, value in service.get("environment", {}).items():
            if "PASSWORD" in name:
                # Only ever a reference to the environment or the .env compose reads.
                assert str(value).startswith("${POSTGRES_PASSWORD:?"), (name, value)


def test_observability_profile_has_prometheus_scraping_the_engine_and_grafana() -> None:
    compose = _yaml("docker-compose.yml")
    services = compose["services"]
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["grafana"]["profiles"] == ["observability"]
    assert "profiles" not in services["engine"]
    prometheus = _yaml("docs/grafana/prometheus.yml")
    # Every container of the engine service, however many `--scale` runs.
    discovery = prometheus["scrape_configs"][0]["dns_sd_configs"][0]
    assert (discovery["names"], discovery["port"]) == (["engine"], 3000)
    for mount in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), source


def test_grafana_provisioning_loads_the_dashboard_from_the_prometheus_datasource() -> None:
    datasource = _yaml("docs/grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    provider = _yaml("docs/grafana/provisioning/dashboards/order-engine.yml")["providers"][0]
    grafana = _yaml("docker-compose.yml")["services"]["grafana"]
    dashboard_mount = next(v for v in grafana["volumes"] if v.startswith("./docs/grafana/order"))
    assert dashboard_mount.split(":")[1].startswith(provider["options"]["path"] + "/")
    dashboard = (ROOT / "docs" / "grafana" / "order-engine.json").read_text()
    assert f'"uid": "{datasource["uid"]}"' in dashboard


def test_the_image_is_pinned_installs_from_the_constraints_and_checks_liveness() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert base is not None
    assert PINNED_IMAGE.match(base.group(1)), base.group(1)
    assert "-c constraints.txt" in dockerfile
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :]
    assert "/livez" in healthcheck
    assert "/health'" not in healthcheck


def test_every_install_uses_the_constraints_file() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line]
    assert installs
    assert all("-c constraints.txt" in line for line in installs)
    pinned = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line]
    assert len(pinned) > 50
