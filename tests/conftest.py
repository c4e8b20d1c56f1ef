"""Shared fixtures: real DNS servers, redis-server, the Slack stand-in, the testbed."""

from __future__ import annotations

import importlib.util

pytest_plugins = ["tests.dnsservers", "tests.services"]
if importlib.util.find_spec("testbed.pytest_plugin") is not None:
    pytest_plugins.append("testbed.pytest_plugin")
