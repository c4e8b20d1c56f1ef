"""`analyze` as a job: which files to read (thread uploads or CLI paths), then the analyzer."""

from __future__ import annotations

from pathlib import Path

from aksdns.commands import AnalyzeCommand
from aksdns.errors import AksDnsError
from workers.jobenv import JobEnv
from workers.report import Report


def execute(cmd: AnalyzeCommand, env: JobEnv) -> Report:
    """Analyze the thread's uploads (Slack) or the given paths (CLI) in one pass."""
    from workers.jobs import analyze  # the pcap core loads only for this job

    from_thread = env.source == "slack"
    paths: list[Path] = env.thread_files() if from_thread else [Path(f) for f in cmd.files]
    if not paths:
        raise AksDnsError("analyze needs at least one capture file")
    env.progress(f"🔬 analyze: reading {len(paths)} capture file(s)…")
    result = analyze.analyze_files(paths, slow_s=cmd.slow_s)
    names = ", ".join(p.name for p in paths[:3]) + (" …" if len(paths) > 3 else "")
    return analyze.build_report(result, title=f"DNS traffic analysis — {names}")
