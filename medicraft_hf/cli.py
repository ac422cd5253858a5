"""`medicraft <subcommand>`: a thin argparse front over the library.

Each subcommand is a module in `medicraft_hf/commands/` exposing `HELP` (one line),
`add_arguments(parser)`, `run(args) -> int | None` and, where its flags differ from the
library's argument names, `FLAGS` ({library name: flag}). They are listed below, and the
library's errors become one-line messages and exit codes in `main`, in one place.
Importing this module loads no torch: every command imports its library code lazily.
"""

from __future__ import annotations

import argparse
import os
import sys

from medicraft_hf import __version__
from medicraft_hf.commands import (
    anatomy_check,
    build,
    demo,
    evaluate,
    generate,
    phantom,
    push,
    review,
    review_report,
    train,
)
from medicraft_hf.errors import RunError, in_own_words

COMMANDS = {
    "anatomy-check": anatomy_check,
    "build": build,
    "demo": demo,
    "evaluate": evaluate,
    "generate": generate,
    "phantom": phantom,
    "push": push,
    "review": review,
    "review-report": review_report,
    "train": train,
}

BAD_INPUT, FAILED = 2, 1  # exit codes: the input was wrong / the job could not finish


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medicraft", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medicraft-hf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, module in COMMANDS.items():
        cmd = sub.add_parser(name, help=module.HELP, description=module.__doc__ or module.HELP,
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = getattr(COMMANDS[args.command], "FLAGS", {})
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as err:  # bad input
        return _fail(args.command, err, flags, BAD_INPUT)
    except RunError as err:  # e.g. a push that failed: the same command retries it
        return _fail(args.command, err, flags, FAILED)


def _fail(command: str, err: BaseException, flags: dict[str, str], code: int) -> int:
    # One clear line, no traceback (set MEDICRAFT_DEBUG=1 to see it).
    if os.environ.get("MEDICRAFT_DEBUG"):
        raise err
    print(f"medicraft {command}: error: {in_own_words(err, flags)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
