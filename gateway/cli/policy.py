"""`obgw policy check|explain`: validate a policy directory, or show what it routes.

Both load the policy exactly as `obgw serve` does (same directory setting, same `OBGW_SERVICE_<NAME>_URL`
overrides), so a policy that passes `check` is one the gateway starts with. Problems are printed to stdout, one
`file:line:col: path: message` line each and the count last, with exit code 2.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli._settings import settings_from
from gateway.policy import PolicyError, PolicySet, load_policy
from gateway.policy.compile import permission_codes
from gateway.policy.explain import render_exposure, render_routes
from gateway.policy.loader import plural


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("policy", help="check the policy files or explain what they route",
                                   description="Check the policy files or explain what they route.")
    commands = parser.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    for name, handler, text in (
        ("check", _check, "validate the policy files; print every problem as file:line:col: path: message"),
        ("explain", _explain, "print the routes: method, path, route id, service → upstream URL, scope, "
                              "permissions, timeout"),
    ):
        command = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        # dest is the setting's name, so settings_from() treats DIR as the --policy-dir flag would be.
        command.add_argument("policy_dir", nargs="?", default=None, metavar="DIR",
                             help="policy directory (default: env OBGW_POLICY_DIR, else policies)")
        command.set_defaults(func=handler)
        if name == "explain":
            command.add_argument("--permissions", type=_permissions, metavar="P1,P2,...",
                                 help="show, per endpoint, what a consent with these UK OB permissions exposes "
                                      "and hides")


def _load(args: argparse.Namespace) -> tuple[Path, PolicySet | None]:
    """The policy directory, and its policy set (None after printing the problems)."""
    settings = settings_from(args)
    try:
        return settings.policy_dir, load_policy(settings.policy_dir, settings.service_urls)
    except PolicyError as exc:
        print(exc)
        return settings.policy_dir, None


def _check(args: argparse.Namespace) -> int:
    directory, policy = _load(args)
    if policy is None:
        return 2
    print(f"ok: {plural(len(policy.routes), 'route')}, {plural(len(policy.services), 'service')} in {directory}")
    return 0


def _permissions(text: str) -> tuple[str, ...]:
    codes = [code.strip() for code in text.split(",") if code.strip()]
    unknown = [code for code in codes if code not in permission_codes()]
    if not codes or unknown:
        named = ", ".join(unknown) or repr(text)
        raise argparse.ArgumentTypeError(f"not UK Open Banking v3.1.11 permission codes: {named}")
    return tuple(codes)


def _explain(args: argparse.Namespace) -> int:
    _, policy = _load(args)
    if policy is None:
        return 2
    print(render_exposure(policy, args.permissions) if args.permissions else render_routes(policy))
    return 0
