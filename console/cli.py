"""The `aksdns` console script: bot, worker, and every command of the grammar.

Grammar commands run the same job in-process against the current kubeconfig and print
text or JSON; `--dry-run` prints the job spec it would queue and touches nothing.
Exit codes: 0 done, 2 usage error, 1 any other failure, always as one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from aksdns.errors import AksDnsError, NotAvailableYet, UsageError, user_message
from aksdns.validate import printable
from console.entry import CLI_FORMATS, WIRESHARK_VERSIONS, AnalyzeRequest

if TYPE_CHECKING:
    from aksdns.commands import Command
    from aksdns.settings import Settings

PROGRAMS = frozenset({"bot", "worker", "healthcheck", "probe", "testbed", "demo", "standin"})
CLI_OPTIONS_HELP = (
    "CLI options: --format text|json (analyze also csv|tshark, with --wireshark 4.0|4.4 for tshark), "
    "--dry-run (print the job, run nothing), "
    "--kubeconfig FILE, --out DIR (write attachments there)."
)


def _split_cli_options(argv: list[str]) -> tuple[list[str], argparse.Namespace]:
    """Take the CLI-only options out of a command line; the rest goes to the grammar."""
    parser = _RaisingParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--format", choices=CLI_FORMATS, default="text")
    parser.add_argument("--wireshark", choices=WIRESHARK_VERSIONS, default="4.0")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--out")
    options, rest = parser.parse_known_args(argv)
    return rest, options


class _RaisingParser(argparse.ArgumentParser):
    """argparse that raises a UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def run_command(argv: list[str], env: dict[str, str]) -> int:
    """Parse and run one grammar command in-process."""
    # The grammar and the registry load here: `analyze`'s short road (console.entry) needs neither.
    from aksdns import grammar
    from aksdns.commands import AnalyzeCommand, HelpCommand
    from aksdns.settings import Settings
    from aksdns.verbs import spec_of

    rest, options = _split_cli_options(argv)
    command = grammar.parse_tokens(rest)
    if isinstance(command, HelpCommand):
        from aksdns.help import help_text

        print(help_text(command.topic, prefix="aksdns").replace("`", "").replace("*", ""))
        print(CLI_OPTIONS_HELP)
        return 0
    settings = Settings.from_env(env)
    cluster = command.cluster or settings.cluster
    if options.dry_run:
        # Imported here: `analyze`, the command timed against tshark, needs neither.
        from aksdns.jobspec import JobSpec
        from aksdns.keys import queue_name

        spec = JobSpec.new(command, cluster=cluster, user=env.get("USER", "cli"), thread=None)
        print(json.dumps({"queue": queue_name(cluster), "job": spec.to_dict()}, indent=2, sort_keys=True))
        return 0
    if not spec_of(command).available:
        raise NotAvailableYet(command.verb.value)
    if options.format in {"csv", "tshark"} and not isinstance(command, AnalyzeCommand):
        raise UsageError(f"--format {options.format} is only for analyze")
    return _execute(command, settings, options)


def _execute(command: Command, settings: Settings, options: argparse.Namespace) -> int:
    from aksdns.commands import AnalyzeCommand, CaptureCommand
    from console.output import write_report

    if isinstance(command, AnalyzeCommand):
        # The same answer as the short road's (console.entry): local files only, no job table.
        from console import analyze_cli

        return analyze_cli.run(command.files, slow_s=command.slow_s, fmt=options.format,
                               wireshark=options.wireshark, out=options.out)
    # Worker-side code loads only here, so `aksdns bot` never imports it.
    from workers import jobs
    from workers.render.text import render_text
    from workers.runner import base_env

    job_env = base_env(settings)
    if options.kubeconfig:
        job_env.kubeconfig = options.kubeconfig
    if isinstance(command, CaptureCommand):
        _capture_env(job_env, options)
    # Pictures and CSV files are made only when --out will keep them.
    job_env.attachments = bool(options.out)
    try:
        report = jobs.execute(command, job_env)
    finally:
        if isinstance(command, CaptureCommand):
            import shutil

            shutil.rmtree(job_env.workdir, ignore_errors=True)
    write_report(report, options.format, options.out)
    if options.out and isinstance(command, CaptureCommand):
        (Path(options.out) / "capture-report.txt").write_text(render_text(report))
    return 0


def _capture_env(job_env: Any, options: argparse.Namespace) -> None:
    """`capture` from a terminal: progress on stderr, Ctrl-C stops it (a second one aborts), the merged
    pcapng and the analysis written to --out."""
    import shutil
    import signal
    import tempfile

    from workers.render.text import render_text

    stopping = {"asked": False}

    def on_interrupt(_sig: int, _frame: object) -> None:
        if stopping["asked"]:
            raise KeyboardInterrupt
        stopping["asked"] = True
        print("aksdns: stopping the capture (Ctrl-C again to abort)…", file=sys.stderr)

    signal.signal(signal.SIGINT, on_interrupt)
    job_env.stop_requested = lambda: stopping["asked"]
    job_env.progress = lambda text: print(f"… {text}", file=sys.stderr, flush=True)
    job_env.workdir = Path(tempfile.mkdtemp(prefix="aksdns-cli-"))
    out = Path(options.out) if options.out else None

    def deliver(path: Path, filename: str, _title: str) -> str:
        if out is None:
            return f"`{filename}` not kept (run with --out DIR to keep it)"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / filename)
        return f"`{out / filename}` ({path.stat().st_size / 1024 / 1024:.1f} MiB)"

    def post(report: Any) -> None:
        text = render_text(report)
        if options.format == "text":  # JSON output stays one document: the capture's report
            sys.stdout.write(text)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "analysis.txt").write_text(text)
            for attachment in report.attachments:
                (out / Path(attachment.filename).name).write_bytes(attachment.content)

    job_env.deliver_file = deliver
    job_env.post_report = post


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aksdns",
        description="AKS DNS troubleshooting: the Slack bot, its worker, and every command in-process.",
    )
    sub = parser.add_subparsers(dest="program", metavar="COMMAND")
    bot = sub.add_parser("bot", help="run the Slack bot (Socket Mode, or --http)")
    bot.add_argument("--http", action="store_true", help="serve POST /slack/events instead of Socket Mode")
    bot.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server inside a pod listens on all
    bot.add_argument("--port", type=int, default=3000)
    bot.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    bot.add_argument("--threads", type=int, default=16, help="threads per worker process")
    worker = sub.add_parser("worker", help="serve this cluster's job queue")
    worker.add_argument("--cluster", help="cluster name (default AKSDNS_CLUSTER)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    health = sub.add_parser("healthcheck", help="exit 0 when the bot or worker is healthy")
    health.add_argument("component", choices=["bot", "worker"])
    health.add_argument("--port", type=int, default=3000)
    sub.add_parser("probe", help="the programs of aksdns's own pods: probe KIND ... (node-dns)", add_help=False)
    sub.add_parser("testbed", help="the local Kubernetes testbed: up|down|status", add_help=False)
    sub.add_parser("demo", help="run the whole product locally and print the Slack thread", add_help=False)
    sub.add_parser("standin", help="run the local Slack Web API stand-in", add_help=False)
    from aksdns.verbs import REGISTRY

    for spec in REGISTRY.values():
        sub.add_parser(spec.name, help=f"{spec.summary} (see `aksdns {spec.name} --help`)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None, *, analyze: AnalyzeRequest | None = None) -> int:
    """Run one command line; ``analyze`` is its meaning when console.entry understood it."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    try:
        if analyze is not None:
            from console import analyze_cli

            if analyze_cli.grammar_accepts(analyze.files):
                return analyze_cli.run(analyze.files, slow_s=analyze_cli.DEFAULT_SLOW_S, fmt=analyze.fmt,
                                       wireshark=analyze.wireshark, out=analyze.out)
        return _dispatch(args, env)
    except AksDnsError as exc:
        print(f"aksdns: {printable(user_message(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `aksdns ... | head`: the reader left, nothing to report
        return 0
    except Exception as exc:  # one line for the user; the traceback only when asked for
        if env.get("AKSDNS_DEBUG"):
            import logging

            logging.exception("unexpected error")
        print(f"aksdns: unexpected error ({type(exc).__name__}); set AKSDNS_DEBUG=1 for details", file=sys.stderr)
        return 1


def _dispatch(args: list[str], env: dict[str, str]) -> int:
    if not args:
        _build_parser().print_help()
        return 0
    program, rest = args[0], args[1:]
    if program not in PROGRAMS and not program.startswith("-"):
        return run_command(args, env)  # the grammar's commands, and its "unknown command" answer
    if program == "probe":
        from workers.probes import programs

        return programs.main(rest)
    if program == "testbed":
        from testbed.__main__ import main as testbed_main

        return int(testbed_main(rest))
    if program == "demo":
        from console.demo import main as demo_main

        return demo_main(rest, env)
    if program == "standin":
        from console.standin import main as standin_main

        return standin_main(rest)
    parser = _build_parser()
    try:
        ns = parser.parse_args(args)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    if ns.program == "bot":
        from bot.main import main as bot_main

        return bot_main(env, http=ns.http, host=ns.host, port=ns.port, workers=ns.workers, threads=ns.threads)
    if ns.program == "worker":
        from workers.main import main as worker_main

        return worker_main(env, cluster=ns.cluster, burst=ns.burst)
    if ns.program == "healthcheck":
        if ns.component == "worker":
            from workers.main import healthcheck

            return healthcheck(env)
        return _bot_healthcheck(ns.port, env)
    parser.print_help()
    return 2


def _bot_healthcheck(port: int, env: dict[str, str]) -> int:
    """HTTP mode: /healthz answers. Socket Mode: Redis answers (the bot's one dependency)."""
    import urllib.request

    from aksdns.settings import Settings

    settings = Settings.from_env(env)
    if not settings.slack_app_token:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
                return 0 if response.status == 200 else 1
        except OSError:
            print("unhealthy: /healthz does not answer")
            return 1
    from aksdns.queue import JobQueue, connect

    try:
        JobQueue(connect(settings.redis_url), job_timeout_s=1).ping()
    except AksDnsError as exc:
        print(f"unhealthy: {exc.message}")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
