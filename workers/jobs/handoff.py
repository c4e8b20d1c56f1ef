"""`handoff`: the thread's incident record for the next on-call engineer, from its history alone.

No cluster access: the job reads the outcomes the runner recorded in this thread (or, when asked
outside a thread with `/aksdns handoff`, the channel's latest incident thread) and writes them back
as a timeline, the hypotheses still held, those ruled out and why, open actions and attachments,
posted in the thread and as a Markdown file.
"""

from __future__ import annotations

from aksdns.commands import HandoffCommand
from workers.analysis import handoff
from workers.jobenv import JobEnv
from workers.report import Attachment, Markdown, Report


def execute(cmd: HandoffCommand, env: JobEnv) -> Report:
    outcomes = [o for o in env.thread_history() if o.verb != "handoff"]
    record = handoff.build(outcomes)
    sections = handoff.sections(record)
    elsewhere = bool(outcomes) and bool(env.job_thread) and record.thread_ts != env.job_thread
    if elsewhere:
        sections.insert(0, Markdown(f"_The record of this channel's latest incident thread ({record.thread_ts}); "
                                    "mention me in another thread to hand that one over._"))
    stem = f"aksdns-handoff-{record.thread_ts or 'empty'}".replace(".", "-")
    attachments = [] if record.empty else [
        Attachment(f"{stem}.md", handoff.markdown(record).encode(), "Incident handoff (Markdown)", "markdown")
    ]
    return Report(
        title="🤝 Handoff",
        status=handoff.status(record),
        summary=handoff.headline(record),
        sections=sections,
        attachments=attachments,
        data=handoff.to_json(record),
    )
