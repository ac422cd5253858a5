"""`medicraft <subcommand>`: a thin argparse front over the library.

Each subcommand is a module in `medicraft_hf/commands/` exposing `HELP` (one line),
`add_arguments(parser)` and `run(args) -> int | None`. They are discovered here so
that adding a command never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from medicraft_hf import __version__, commands


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield info.name.replace("_", "-"), importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medicraft", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medicraft-hf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, module in _command_modules():
        cmd = sub.add_parser(name, help=module.HELP, description=module.__doc__ or module.HELP,
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        # Bad input: one clear line, no traceback (set MEDICRAFT_DEBUG=1 to see it).
        import os

        if os.environ.get("MEDICRAFT_DEBUG"):
            raise
        print(f"medicraft {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
