"""The `obgw` command line: one module per noun, each with `register(subparsers)`.

Exit codes: 0 ok, 1 a check failed (e.g. `audit verify`), 2 bad input. Errors go to stderr as `obgw: <message>`.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from gateway import __version__
from gateway.state import OWNER_ONLY_UMASK

# The nouns, in the order `obgw --help` lists them.
COMMANDS = ("serve", "demo", "demo_cluster", "certs", "clients", "consents", "keys", "policy", "usage", "audit",
            "admin")


class CliError(Exception):
    """Bad input: printed as `obgw: <message>`, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obgw", description="Open-banking API gateway and consent manager.")
    parser.add_argument("--version", action="version", version=f"obgw {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"gateway.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Whatever a command writes (var/, the admin password's hash, an operator's audit checkpoint) is born
    # owner-only, as the gateway's own state is (gateway.state).
    os.umask(OWNER_ONLY_UMASK)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"obgw: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
