"""``python -m analysis``: the study's command line.

    python -m analysis data status|fetch NAME|verify   datasets (analysis.data)
    python -m analysis list                            experiments and cache state
    python -m analysis run CHAPTER|EXPERIMENT [--profile P]
    python -m analysis cache clear [EXPERIMENT] | cache verify
    python -m analysis tune SEARCH [--workers N | --chief | --worker ...]
                                                       a keras-tuner search (analysis.tuning)
    python -m analysis digits train [--profile P] [--output DIR]
    python -m analysis predict-digit IMAGE... [--model PATH] [--show OUT.png]

Every mistake of the user's ends in one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from analysis.errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and still exit status 2)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise UserError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m analysis", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    from analysis.data import cli as data_cli
    from analysis import runner_cli
    from analysis.digits import cli as digits_cli
    from analysis.tuning import cli as tuning_cli

    data_cli.add_commands(commands)
    runner_cli.add_commands(commands)
    tuning_cli.add_commands(commands)
    digits_cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return UserError.exit_status
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
