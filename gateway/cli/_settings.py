"""Settings for CLI commands: flags first, then the environment (see gateway.settings)."""
from __future__ import annotations

import argparse

from gateway.audit.archive import ArchivedLog, ArchiveError
from gateway.cli import CliError
from gateway.policy import PolicyError, PolicySet, load_policy
from gateway.settings import SETTINGS, Settings, SettingsError
from gateway.store.audit import AuditReader
from gateway.store.embedded import EmbeddedRedisError, redis_url_for
from gateway.store.redis import RedisError, sync_client


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    try:
        return Settings.load(flags)
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def policy_from(args: argparse.Namespace) -> PolicySet:
    """The policy the gateway runs (`--policy-dir`, OBGW_POLICY_DIR); a bad one is a CLI error listing its problems."""
    settings = settings_from(args)
    try:
        return load_policy(settings.policy_dir, settings.service_urls)
    except PolicyError as exc:
        raise CliError(f"the policy in {settings.policy_dir} has problems:\n{exc}") from None


def with_redis(args: argparse.Namespace, work, purpose: str = "reach Redis"):
    """Run `work(client, settings)` with a sync Redis client: REDIS_URL, else the running gateway's embedded Redis;
    neither is a CLI error naming REDIS_URL. Connection problems become a CLI error saying what could not be done."""
    settings = settings_from(args)
    try:
        url = redis_url_for(settings.redis_url, settings.var_dir)
    except EmbeddedRedisError as exc:
        raise CliError(str(exc)) from None
    client = sync_client(url)
    try:
        return work(client, settings.replace(redis_url=url))  # the Redis found, for any further client
    except RedisError as exc:
        raise CliError(f"cannot {purpose}: {exc}") from None
    finally:
        client.close()


def audit_log(client, settings: Settings) -> ArchivedLog:
    """The audit log as every CLI command reads it: the archive's segments, then the live stream, as one log."""
    try:
        return ArchivedLog(AuditReader(client), settings.audit_archive_path)
    except ArchiveError as exc:
        raise CliError(str(exc)) from None
