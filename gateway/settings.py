"""Runtime settings: every setting declared once, read from flags, then `OBGW_*` / `REDIS_URL`, then defaults.

A bad value stops the start with a message naming the variable (or flag) and the value, never a stack trace.
Settings are frozen: they are read once at start and passed down explicitly; nothing reads the environment later.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

KEY_ENCRYPTION_KEY_FILE = "signing.kek"  # `obgw certs init` writes one beside the CA (gateway.pki)


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names where it came from."""


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("not a TCP port (0-65535)")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _log_level(text: str) -> str:
    value = text.strip().lower()
    if value not in ("debug", "info", "warning", "error"):
        raise ValueError("must be debug, info, warning or error")
    return value


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _optional_text(text: str) -> str | None:
    return text or None


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def _seconds_up_to(limit: int) -> Callable[[str], int]:
    """A lifetime in whole seconds, at least 1 and at most `limit` (a ceiling the standard sets)."""
    def cast(text: str) -> int:
        value = _positive_int(text)
        if value > limit:
            raise ValueError(f"must be at most {limit}")
        return value
    return cast


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0")


def _bank_name(text: str) -> str:
    value = text.strip()
    if not value or len(value) > 60:
        raise ValueError("must be 1 to 60 characters")
    return value


def _logo_file(text: str) -> Path | None:
    """The bank's logo on the customer pages: an .svg or .png file of at most 64 KiB (web.brand embeds it)."""
    if not text:
        return None
    path = Path(text)
    if path.suffix.lower() not in (".svg", ".png"):
        raise ValueError("must be an .svg or .png file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    if size > 64 * 1024:
        raise ValueError(f"must be at most 65536 bytes, not {size}")
    return path


def _https_url(text: str) -> str | None:
    if not text:
        return None
    if not text.startswith("https://") or text.endswith("/") or "?" in text or "#" in text:
        raise ValueError("must be an https:// URL without a trailing slash, query or fragment (RFC 8414 §2)")
    return text


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: str
    cast: Callable[[str], Any]
    help: str


# The one declaration of every setting: (field, environment variable, default, cast, description).
SETTINGS: tuple[Setting, ...] = (
    Setting("host", "OBGW_HOST", "127.0.0.1", str, "address of the HTTPS listener for TPPs and browsers"),
    Setting("port", "OBGW_PORT", "8443", _port, "port of the HTTPS listener"),
    Setting("admin_host", "OBGW_ADMIN_HOST", "127.0.0.1", str, "address of the admin listener (/healthz, /metrics)"),
    Setting("admin_port", "OBGW_ADMIN_PORT", "8090", _port, "port of the admin listener"),
    Setting("workers", "OBGW_WORKERS", "1", _positive_int, "gateway worker processes; all share one Redis"),
    Setting("redis_url", "REDIS_URL", "", _optional_text,
            "Redis every gateway process shares; unset: `obgw serve` refuses to start unless given --embedded-redis "
            "(`obgw demo` starts an embedded private redis-server), and the other commands use the embedded one a "
            "running gateway holds"),
    Setting("var_dir", "OBGW_VAR_DIR", "var", Path,
            "state directory (owner-only): embedded Redis data, audit checkpoints"),
    Setting("policy_dir", "OBGW_POLICY_DIR", "policies", Path, "directory of the policy files"),
    Setting("tls_cert", "OBGW_TLS_CERT", "certs/dev/server.pem", Path, "server certificate (PEM, chain)"),
    Setting("tls_key", "OBGW_TLS_KEY", "certs/dev/server.key", Path, "server private key (PEM)"),
    Setting("client_ca", "OBGW_CLIENT_CA", "certs/dev/ca.pem", Path, "CA bundle trusted for TPP client certificates"),
    Setting(
        "trusted_proxies", "OBGW_TRUSTED_PROXIES", "", _networks,
        "comma-separated addresses/networks of TLS-terminating proxies whose RFC 9440 Client-Cert header is honoured; "
        "empty (default): the header is ignored and stripped from every request",
    ),
    Setting("audit_checkpoint_seconds", "OBGW_AUDIT_CHECKPOINT_SECONDS", "10", _positive_int,
            "how often each worker anchors its audit chain head in var/audit/checkpoints.jsonl"),
    Setting("issuer", "OBGW_ISSUER", "", _https_url,
            "the authorization server's issuer URL, as TPPs reach it; unset: https://HOST:PORT"),
    Setting("access_token_seconds", "OBGW_ACCESS_TOKEN_SECONDS", "600", _seconds_up_to(3600),
            "lifetime of access tokens and id_tokens (at most 3600)"),
    Setting("refresh_token_seconds", "OBGW_REFRESH_TOKEN_SECONDS", "7776000", _positive_int,
            "lifetime of refresh tokens (never beyond the consent's own expiry)"),
    Setting("auth_code_seconds", "OBGW_AUTH_CODE_SECONDS", "60", _seconds_up_to(60),
            "lifetime of authorization codes (FAPI: at most 60)"),
    Setting("par_seconds", "OBGW_PAR_SECONDS", "90", _seconds_up_to(90),
            "lifetime of pushed authorization request_uris (RFC 9126; at most 90)"),
    Setting("consent_authorise_seconds", "OBGW_CONSENT_AUTHORISE_SECONDS", "600", _seconds_up_to(86_400),
            "how long a new consent may await the customer's authorisation before it lapses (reads as Rejected)"),
    Setting("login_seconds", "OBGW_LOGIN_SECONDS", "600", _seconds_up_to(3600),
            "how long a customer has to log in and decide on the consent page"),
    Setting("directory_jwks", "OBGW_DIRECTORY_JWKS", "certs/dev/directory-jwks.json", Path,
            "JWKS of the software-statement directory trusted for dynamic client registration"),
    Setting("audit_key", "OBGW_AUDIT_KEY", "", _optional_path,
            "file of the secret that pseudonymises customers in the audit log (re-identifying one needs it); "
            "unset: audit.key beside OBGW_CLIENT_CA"),
    Setting("audit_signing_key", "OBGW_AUDIT_SIGNING_KEY", "", _optional_path,
            "Ed25519 private key (PEM) that signs the audit checkpoints; unset: audit-signing.key beside "
            "OBGW_CLIENT_CA"),
    Setting("admin_password_file", "OBGW_ADMIN_PASSWORD_FILE", "", _optional_path,
            "scrypt hash of the admin pages' password (`obgw admin password` writes it); unset: "
            "VAR_DIR/admin-password"),
    Setting("key_encryption_key", "OBGW_KEY_ENCRYPTION_KEY", "", _optional_path,
            "file of the key (32 random bytes as hex) that encrypts the token-signing keys kept in Redis (never "
            "put in Redis); unset: signing.kek beside OBGW_CLIENT_CA"),
    Setting("plain_http", "OBGW_PLAIN_HTTP", "0", _flag,
            "1: the TPP listener speaks plain HTTP, for a TLS-terminating edge on this host that forwards the "
            "verified certificate (RFC 9440): only on a loopback OBGW_HOST and with OBGW_TRUSTED_PROXIES; set "
            "OBGW_ISSUER to the edge's URL"),
    Setting("events_allow_loopback", "OBGW_EVENTS_ALLOW_LOOPBACK", "0", _flag,
            "1: a TPP's event CallbackUrl may be on this host's loopback (http too), as in tests; 0: public https "
            "addresses only"),
    Setting("redis_sentinels", "REDIS_SENTINELS", "", _optional_text,
            "comma-separated host:port of Redis Sentinels (the master's password as :PASSWORD@ before the first); "
            "with no REDIS_URL, the gateway uses the master they name REDIS_SENTINEL_MASTER (the same as "
            "REDIS_URL=redis+sentinel://[:PASSWORD@]HOST:PORT,.../MASTER)"),
    Setting("redis_sentinel_master", "REDIS_SENTINEL_MASTER", "mymaster", str,
            "the master name the Sentinels monitor (with REDIS_SENTINELS)"),
    Setting("redis_sentinel_password", "REDIS_SENTINEL_PASSWORD", "", _optional_text,
            "the Sentinels' own password (their requirepass; the master's goes in the URL or REDIS_SENTINELS): "
            "the URL option ?sentinel_password="),
    Setting("redis_tls_ca", "REDIS_TLS_CA", "", _optional_path,
            "CA file (PEM) that Redis's TLS certificates are verified with, for a rediss://, rediss+cluster:// or "
            "rediss+sentinel:// REDIS_URL (the URL option ?ssl_ca_certs=); with REDIS_SENTINELS, it makes their URL "
            "rediss+sentinel://"),
    Setting("audit_live_seconds", "OBGW_AUDIT_LIVE_SECONDS", "86400", _non_negative_int,
            "how long audit records stay in Redis before they are archived to signed segment files and trimmed "
            "(0: never archived, Redis keeps every record)"),
    Setting("audit_archive_seconds", "OBGW_AUDIT_ARCHIVE_SECONDS", "60", _positive_int,
            "how often the gateway archives the audit records due (one worker of all at a time)"),
    Setting("audit_archive_dir", "OBGW_AUDIT_ARCHIVE_DIR", "", _optional_path,
            "directory of the audit archive (segments and their signed manifest), shared by every node that "
            "archives; unset: VAR_DIR/audit/archive"),
    Setting("audit_archive_keep_days", "OBGW_AUDIT_ARCHIVE_KEEP_DAYS", "0", _non_negative_int,
            "days an audit archive segment is kept after its newest record, then deleted (a signed manifest line "
            "says so); 0: kept forever"),
    Setting("audit_shards", "OBGW_AUDIT_SHARDS", "1", _positive_int,
            "audit shards the workers' chains spread over, each its own Redis Cluster slot (1: one stream, as on "
            "one Redis; on a Cluster, as many as it has masters); readers find every shard ever written"),
    Setting("log_level", "OBGW_LOG_LEVEL", "info", _log_level,
            "debug, info (a `request` line per call), warning or error: the least severe JSON log line written to "
            "stderr"),
    Setting("metrics_tpp_series", "OBGW_METRICS_TPP_SERIES", "50", _positive_int,
            "TPPs (client ids) each worker counts by name in obgw_tpp_requests; later ones are counted as `other`"),
    Setting("bank_name", "OBGW_BANK_NAME", "obgw bank", _bank_name,
            "the bank's name at the top of every customer page (login, consent, dashboard)"),
    Setting("bank_logo", "OBGW_BANK_LOGO", "", _logo_file,
            "the bank's logo on every customer page: an .svg or .png file of at most 64 KiB, embedded in the page; "
            "unset: the bundled logo"),
)


def _with_redis_options(url: str, tls_ca: Path | None, sentinel_password: str | None) -> str:
    """REDIS_URL with REDIS_TLS_CA and REDIS_SENTINEL_PASSWORD as its query options (store/redis.py reads them
    there, so every process and the URL file the CLI reads carry them); an option the URL names itself wins."""
    scheme = url.partition("://")[0]
    if tls_ca and not scheme.startswith("rediss"):
        raise SettingsError(f"REDIS_TLS_CA={str(tls_ca)!r}: REDIS_URL ({scheme}://...) does not use TLS; use "
                            f"rediss://, rediss+cluster:// or rediss+sentinel://")
    if sentinel_password and not scheme.endswith("+sentinel"):
        raise SettingsError(f"REDIS_SENTINEL_PASSWORD is set, but REDIS_URL ({scheme}://...) does not name "
                            f"Sentinels (redis+sentinel:// or REDIS_SENTINELS)")
    base, _, query = url.partition("?")
    present = urllib.parse.parse_qs(query, keep_blank_values=True)
    options = {name: value for name, value in (("ssl_ca_certs", str(tls_ca) if tls_ca else None),
                                               ("sentinel_password", sentinel_password))
               if value and name not in present}
    return "?".join((base, "&".join(filter(None, (query, urllib.parse.urlencode(options)))))) if options else url


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    admin_host: str
    admin_port: int
    workers: int
    redis_url: str | None
    var_dir: Path
    policy_dir: Path
    tls_cert: Path
    tls_key: Path
    client_ca: Path
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    audit_checkpoint_seconds: int
    issuer: str | None
    access_token_seconds: int
    refresh_token_seconds: int
    auth_code_seconds: int
    par_seconds: int
    consent_authorise_seconds: int
    login_seconds: int
    directory_jwks: Path
    audit_key: Path | None
    audit_signing_key: Path | None
    admin_password_file: Path | None
    key_encryption_key: Path | None
    plain_http: bool = False
    events_allow_loopback: bool = False
    redis_sentinels: str | None = None
    redis_sentinel_master: str = "mymaster"
    audit_live_seconds: int = 86400
    audit_archive_seconds: int = 60
    audit_archive_dir: Path | None = None
    audit_archive_keep_days: int = 0
    audit_shards: int = 1
    redis_sentinel_password: str | None = None
    redis_tls_ca: Path | None = None
    log_level: str = "info"
    metrics_tpp_series: int = 50
    bank_name: str = "obgw bank"
    bank_logo: Path | None = None
    # Back-end URL overrides, `OBGW_SERVICE_<NAME>_URL`, applied over policies/services.yaml.
    service_urls: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.redis_sentinels and not self.redis_url:  # REDIS_SENTINELS is a REDIS_URL of the Sentinel form
            scheme = "rediss+sentinel" if self.redis_tls_ca else "redis+sentinel"
            object.__setattr__(self, "redis_url", f"{scheme}://{self.redis_sentinels}/{self.redis_sentinel_master}")
        if self.redis_url and (self.redis_tls_ca or self.redis_sentinel_password):
            object.__setattr__(self, "redis_url", _with_redis_options(self.redis_url, self.redis_tls_ca,
                                                                      self.redis_sentinel_password))

    @property
    def redis(self) -> str:
        """REDIS_URL, for what needs Redis: unset, the command that runs it must have started the embedded one."""
        if not self.redis_url:
            raise SettingsError("REDIS_URL is not set (`obgw serve` needs it, or --embedded-redis)")
        return self.redis_url

    @classmethod
    def load(cls, flags: Mapping[str, str | None] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Resolve every setting: a flag given on the command line wins over the environment, which wins over the
        default."""
        flags = flags or {}
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for s in SETTINGS:
            flag_value = flags.get(s.name)
            source, raw = (f"--{s.name.replace('_', '-')}", flag_value) if flag_value is not None else (
                (s.env, environ[s.env]) if s.env in environ else (f"default of {s.env}", s.default))
            try:
                values[s.name] = s.cast(str(raw))
            except ValueError as exc:
                raise SettingsError(f"{source}={raw!r}: {exc}") from None
        prefix, suffix = "OBGW_SERVICE_", "_URL"
        values["service_urls"] = {
            key[len(prefix):-len(suffix)].lower(): value
            for key, value in environ.items() if key.startswith(prefix) and key.endswith(suffix)
        }
        return cls(**values)

    @property
    def issuer_url(self) -> str:
        """The issuer (RFC 8414): configured, else the listener's own https origin."""
        return self.issuer or f"https://{self.host}:{self.port}"

    @property
    def audit_key_file(self) -> Path:
        return self.audit_key or self.client_ca.parent / "audit.key"

    @property
    def audit_signing_key_file(self) -> Path:
        return self.audit_signing_key or self.client_ca.parent / "audit-signing.key"

    @property
    def key_encryption_key_file(self) -> Path:
        return self.key_encryption_key or self.client_ca.parent / KEY_ENCRYPTION_KEY_FILE

    @property
    def audit_archive_path(self) -> Path:
        return self.audit_archive_dir or self.var_dir / "audit" / "archive"

    @property
    def admin_password_path(self) -> Path:
        return self.admin_password_file or self.var_dir / "admin-password"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_environ(self) -> dict[str, str]:
        """The settings as the environment variables that `load` reads back: how `serve` hands them to workers."""
        env = {}
        for s in SETTINGS:
            value = getattr(self, s.name)
            env[s.env] = ",".join(map(str, value)) if isinstance(value, tuple) else "" if value is None else str(value)
        env.update({f"OBGW_SERVICE_{name.upper()}_URL": url for name, url in self.service_urls.items()})
        return env


def add_arguments(parser: Any, names: tuple[str, ...]) -> None:
    """Add `--flag` options for the named settings to an argparse parser (defaults stay None: see Settings.load)."""
    by_name = {s.name: s for s in SETTINGS}
    for name in names:
        s = by_name[name]
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                            help=f"{s.help} (env {s.env}, default {s.default or 'unset'})")
