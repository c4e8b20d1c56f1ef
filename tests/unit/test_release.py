"""Release hygiene: the package version, the chart's appVersion and the image tag move together."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from testbed import image

REPO = Path(__file__).resolve().parents[2]


def versions() -> dict[str, str]:
    chart = yaml.safe_load((REPO / "charts" / "aksdns" / "Chart.yaml").read_text())
    dockerfile = (REPO / "Dockerfile").read_text()
    arg = re.search(r"^ARG VERSION=(\S+)$", dockerfile, re.M)
    return {
        "pyproject.toml": tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"],
        "native/pyproject.toml": tomllib.loads((REPO / "native" / "pyproject.toml").read_text())["project"]["version"],
        "Chart.yaml appVersion": str(chart["appVersion"]),
        "Dockerfile ARG VERSION": arg.group(1) if arg else "",
        "image tag (scripts/image)": image.image_ref().rsplit(":", 1)[1],
    }


def test_package_chart_and_image_versions_are_one() -> None:
    found = versions()
    assert len(set(found.values())) == 1, found


def test_docs_build_and_push_the_current_version() -> None:
    """Every `aksdns:<version>` the README and the Dockerfile show is the current one."""
    version = versions()["pyproject.toml"]
    for doc in ("README.md", "Dockerfile"):
        tags = set(re.findall(r"\baksdns:(\d+\.\d+\.\d+)\b", (REPO / doc).read_text()))
        assert tags <= {version}, (doc, tags)


def test_chart_image_defaults_to_the_app_version() -> None:
    values = yaml.safe_load((REPO / "charts" / "aksdns" / "values.yaml").read_text())
    assert values["image"]["tag"] == ""  # so the image is <repository>:<appVersion>
    helpers = (REPO / "charts" / "aksdns" / "templates" / "_helpers.tpl").read_text()
    assert "default .Chart.AppVersion .Values.image.tag" in helpers
