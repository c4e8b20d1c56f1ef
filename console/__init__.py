"""Composition roots and local tools: the `aksdns` console script, the demo, the Slack stand-in and
the embedded Redis. They may import everything (core, bot, workers, testbed); nothing imports them
except tests."""
