"""`obgw admin password`: set the password of the admin pages (user `admin`) on the admin listener."""
from __future__ import annotations

import getpass
import sys

from gateway.admin.credentials import write_password
from gateway.cli import CliError
from gateway.cli._settings import settings_from
from gateway.settings import add_arguments

MIN_LENGTH = 12


def register(subparsers) -> None:
    p = subparsers.add_parser("admin", help="the admin pages' credential", description=__doc__)
    sub = p.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    w = sub.add_parser("password", help="set the admin password: from standard input (first line) if it is not "
                                        "a terminal, else asked twice")
    add_arguments(w, ("var_dir", "admin_password_file"))
    w.set_defaults(func=set_password)


def set_password(args) -> int:
    settings = settings_from(args)
    if sys.stdin.isatty():
        password = getpass.getpass("admin password: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_LENGTH:
        raise CliError(f"the admin password must have at least {MIN_LENGTH} characters")
    write_password(settings.admin_password_path, password)
    print(f"admin password set in {settings.admin_password_path}")
    return 0
