"""`analyze` as a job: which files to read (thread uploads or CLI paths), one pass of the
compiled core over them, then the report (workers.analysis.traffic)."""

from __future__ import annotations

from pathlib import Path

from aksdns.commands import AnalyzeCommand
from aksdns.errors import AksDnsError
from workers.jobenv import JobEnv
from workers.report import Report


def execute(cmd: AnalyzeCommand, env: JobEnv) -> Report:
    """Analyze the thread's uploads (Slack) or the given paths (CLI) in one pass.

    ``env.attachments = False`` (the CLI without ``--out``) skips the pictures and CSV
    files: nothing would show them.
    """
    # The pcap core loads only for this job.
    from workers.analysis.traffic import analysis

    from_thread = env.source == "slack"
    paths: list[Path] = env.thread_files() if from_thread else [Path(f) for f in cmd.files]
    if not paths:
        raise AksDnsError("analyze needs at least one capture file")
    env.progress(f"🔬 analyze: reading {len(paths)} capture file(s)…")
    pending = analysis.start(paths, slow_s=cmd.slow_s)
    # While the core's threads read the captures, this thread loads what the report needs
    # (a forked worker job has it loaded already: then this costs nothing).
    from workers.analysis.traffic.report import build_report

    if env.attachments:
        from workers.analysis.traffic import charts

        charts.preload()
    result = pending.result()
    names = ", ".join(p.name for p in paths[:3]) + (" …" if len(paths) > 3 else "")
    return build_report(result, title=f"DNS traffic analysis — {names}",
                        attachments=env.attachments)
