"""`obgw certs init`: create the development PKI (CA, server certificate, demo TPPs, the demo customers'
authenticator secrets) - see certs/README.md."""
from __future__ import annotations

import argparse
from pathlib import Path

from gateway import pki
from gateway.cli import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "certs",
        help="development certificates for mutual TLS",
        description="Manage the development PKI: the CA trusted for TPP client certificates, "
        "the gateway's server certificate and demo TPP registrations.",
    )
    sub = p.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")
    c = sub.add_parser(
        "init",
        help="create the CA, server and TPP certificates",
        description="Create ca.pem/.key, server.pem/.key (for localhost, 127.0.0.1, ::1), per TPP "
        "<name>.pem/.key/.json, and customers.json (the demo customers' published authenticator secrets). Existing "
        "files are kept; only missing TPPs are issued, by the existing CA.",
    )
    c.add_argument("--dir", type=Path, default=Path("certs/dev"), help="output directory (default: %(default)s)")
    c.add_argument(
        "--tpp", action="append", metavar="NAME",
        help=f"a TPP to create, repeatable (default: {', '.join(pki.DEMO_TPPS)}); NAME is also its client_id",
    )
    c.add_argument(
        "--redirect-uri", default=pki.DEFAULT_REDIRECT_URI,
        help="redirect URI recorded for the TPPs (default: %(default)s)",
    )
    c.add_argument("--force", action="store_true", help="replace existing files, including the CA")
    c.set_defaults(func=init)


def init(args: argparse.Namespace) -> int:
    try:
        written = pki.init_dev_pki(args.dir, args.tpp or pki.DEMO_TPPS, args.redirect_uri, force=args.force)
    except (pki.PkiError, OSError) as exc:  # bad names, an incomplete CA, an unwritable directory
        raise CliError(str(exc)) from None
    if not written:
        print(f"certs in {args.dir} already exist (use --force to replace)")
    for path in written:
        print(f"wrote {path}")
    return 0
