"""Operator commands that change something are audited first: the record names the command, what it acted on and
the operating-system user (`audit/operator.py`), and a command whose record cannot be stored does nothing."""
from __future__ import annotations

from gateway.audit.operator import record_operator_action
from gateway.cli import CliError
from gateway.settings import Settings


def audited(settings: Settings, command: str, *, client_id: str | None = None, consent_id: str | None = None) -> None:
    """Record `obgw <command>` (e.g. "clients disable"); reason `operator.<command>` (e.g. operator.clients_disable).
    Call it once the command's input is checked and right before the change."""
    try:
        record_operator_action(settings, route=f"obgw {command}", reason="operator." + command.replace(" ", "_")
                               .replace("-", "_"), client_id=client_id, consent_id=consent_id)
    except Exception as exc:  # the action could not be recorded: it does not happen
        raise CliError(f"cannot record `obgw {command}` in the audit log, so nothing was done: {exc}") from None
