"""Settings for CLI commands: flags first, then the environment (see gateway.settings)."""
from __future__ import annotations

import argparse

from gateway.cli import CliError
from gateway.settings import SETTINGS, Settings, SettingsError


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    try:
        return Settings.load(flags)
    except SettingsError as exc:
        raise CliError(str(exc)) from None
