"""`analyze` as a job: which files to read (thread uploads or CLI paths), then the one pass and
its report (``workers.analysis.traffic.answer``)."""

from __future__ import annotations

from pathlib import Path

from aksdns.commands import AnalyzeCommand
from aksdns.errors import AksDnsError
from workers.analysis.traffic.answer import report_for
from workers.jobenv import JobEnv
from workers.report import Report


def execute(cmd: AnalyzeCommand, env: JobEnv) -> Report:
    """Analyze the thread's uploads (Slack) or the given paths (CLI) in one pass.

    ``env.attachments = False`` (the CLI without ``--out``) skips the pictures and CSV
    files: nothing would show them.
    """
    from_thread = env.source == "slack"
    paths: list[Path] = env.thread_files() if from_thread else [Path(f) for f in cmd.files]
    if not paths:
        raise AksDnsError("analyze needs at least one capture file")
    return report_for(paths, slow_s=cmd.slow_s, attachments=env.attachments, progress=env.progress)
