"""The ``syspage`` command: one subcommand per stage, plus scan and run.

Each subcommand lives in syspage/commands/<name>.py and exposes HELP, EXAMPLE,
add_arguments(parser) and run(args, ui) -> exit code. This module wires them up,
and is the one place that turns a SyspageError into one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

# Polars allocates with its own jemalloc (symbols prefixed _rjem_, configured by the environment
# variable _RJEM_MALLOC_CONF, read once, when Polars is first loaded: hence here, before any stage
# is imported). By default it keeps freed pages for 10 s in 4 arenas per CPU: on the parse
# benchmark a third of `syspage parse`'s peak RSS was such pages (issue 3). One arena per CPU and
# freed pages returned after 1 s: kdump 1M lines 259 -> 218 MB, no measurable time (docs/parse.md).
# A value the user set wins. https://jemalloc.net/jemalloc.3.html#tuning
os.environ.setdefault("_RJEM_MALLOC_CONF", f"narenas:{os.cpu_count() or 1},dirty_decay_ms:1000,muzzy_decay_ms:0")

from syspage import __version__
from syspage.errors import SyspageError
from syspage.ui import UI

COMMANDS = ("collect", "parse", "replay", "analyze", "scan", "run")

EXIT_OK = 0
EXIT_FAILED = 1      # the work ran and found a problem (e.g. a check failed)
EXIT_USAGE = 2       # bad input or usage: one line on stderr


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message to one line."""

    def error(self, message: str):  # noqa: D401
        self.exit(EXIT_USAGE, f"syspage: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="syspage",
        description="What would it save to move this system call onto a shared page? "
        "Trace a workload, parse the trace, replay its page-eligible calls against the "
        "syscall path and a shared page, and report the savings.",
        epilog="example:\n  syspage run -o out -- python3 -c 'import os; [os.getpid() for _ in range(1000)]'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"syspage {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"syspage.commands.{name}")
        sub = subs.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog="example:\n" + module.EXAMPLE,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


class _Terminated(BaseException):
    """SIGTERM (timeout(1), kill, a CI runner), raised so that the stages' finally blocks run:
    `syspage parse -o` would otherwise leave its temporary directory of spilled rows (hundreds of
    MB for a big trace) beside the output."""


_NOT_SET = object()


def _raise_terminated(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    ui = UI(quiet=args.quiet)
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:   # not the main thread (main called by a program of its own): signals are its business
        previous = _NOT_SET
    try:
        return args._module.run(args, ui)
    except SyspageError as exc:
        ui.error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        ui.error("interrupted")
        return 130
    except _Terminated:
        ui.error("terminated")
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        # A file the library did not wrap (an unwritable -o, a full disk): still one line.
        where = f"{exc.filename}: " if exc.filename else ""
        ui.error(f"{where}{exc.strerror or str(exc).splitlines()[0]}")
        return EXIT_USAGE
    finally:
        if previous is not _NOT_SET:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
