"""Settings from the environment, read once by the composition roots (never at import)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aksdns.dig_policy import DigPolicy
from aksdns.errors import AksDnsError

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _csv(value: str | None) -> frozenset[str]:
    return frozenset(v.strip() for v in (value or "").split(",") if v.strip())


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise AksDnsError(f"setting {key} must be a number, not {raw!r}") from None


def _bounded(env: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    value = _float(env, key, default)
    if not low <= value <= high:
        raise AksDnsError(f"setting {key} must be between {low:g} and {high:g}, not {value:g}")
    return value


def _dig_allow(text: str) -> str:
    DigPolicy.from_setting(text)  # a bad allowlist stops the process at start, with one line
    return text


@dataclass(frozen=True)
class Settings:
    """Everything the bot, the worker and the CLI read from their environment."""

    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_app_token: str = ""
    slack_api_url: str = DEFAULT_SLACK_API_URL
    redis_url: str = DEFAULT_REDIS_URL
    cluster: str = "default"
    clusters: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    privileged_users: frozenset[str] = frozenset()
    privileged_groups: frozenset[str] = frozenset()
    namespace: str = "aksdns"
    probe_image: str = "aksdns:latest"
    azure_dns: str = "168.63.129.16"
    external_name: str = "microsoft.com"
    job_timeout_s: float = 600.0
    log_level: str = "INFO"
    kubeconfig: str | None = None
    resolv_conf: str = "/etc/resolv.conf"
    dig_allow: str = ""  # AKSDNS_DIG_ALLOW: networks (and ports) `dig` may ask beyond the default policy
    history_days: float = 14.0  # how long a thread's history (and Re-run bases) is kept
    audit_days: float = 90.0  # how long the audit stream keeps an entry
    capture_max_bytes: int = 100 * 1024 * 1024  # AKSDNS_CAPTURE_MAX_MIB: bytes kept per capture target (a ring)
    capture_snaplen: int = 8192  # AKSDNS_CAPTURE_SNAPLEN: bytes kept of each packet
    capture_retention_s: float = 3600.0  # AKSDNS_CAPTURE_RETENTION_MINUTES: capture files a dead job left

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from a mapping such as ``os.environ`` (passed in, for tests)."""
        api_url = env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
        if not api_url.endswith("/"):
            api_url += "/"
        cluster = env.get("AKSDNS_CLUSTER") or "default"
        clusters = _csv(env.get("AKSDNS_CLUSTERS")) or frozenset({cluster})
        return cls(
            slack_bot_token=env.get("SLACK_BOT_TOKEN", ""),
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
            slack_app_token=env.get("SLACK_APP_TOKEN", ""),
            slack_api_url=api_url,
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            cluster=cluster,
            clusters=clusters | {cluster},
            allowed_channels=_csv(env.get("AKSDNS_ALLOWED_CHANNELS")),
            privileged_users=_csv(env.get("AKSDNS_PRIVILEGED_USERS")),
            privileged_groups=_csv(env.get("AKSDNS_PRIVILEGED_GROUPS")),
            namespace=env.get("AKSDNS_NAMESPACE") or "aksdns",
            probe_image=env.get("AKSDNS_PROBE_IMAGE") or "aksdns:latest",
            azure_dns=env.get("AKSDNS_AZURE_DNS") or "168.63.129.16",
            external_name=env.get("AKSDNS_EXTERNAL_NAME") or "microsoft.com",
            job_timeout_s=_float(env, "AKSDNS_JOB_TIMEOUT", 600.0),
            log_level=(env.get("AKSDNS_LOG_LEVEL") or "INFO").upper(),
            kubeconfig=env.get("KUBECONFIG") or None,
            resolv_conf=env.get("AKSDNS_RESOLV_CONF") or "/etc/resolv.conf",
            dig_allow=_dig_allow(env.get("AKSDNS_DIG_ALLOW", "")),
            history_days=_float(env, "AKSDNS_HISTORY_DAYS", 14.0),
            audit_days=_float(env, "AKSDNS_AUDIT_DAYS", 90.0),
            capture_max_bytes=int(_bounded(env, "AKSDNS_CAPTURE_MAX_MIB", 100.0, 1.0, 1024.0) * 1024 * 1024),
            capture_snaplen=int(_bounded(env, "AKSDNS_CAPTURE_SNAPLEN", 8192.0, 96.0, 65535.0)),
            capture_retention_s=_bounded(env, "AKSDNS_CAPTURE_RETENTION_MINUTES", 60.0, 15.0, 1440.0) * 60.0,
        )

    def redacted(self) -> dict[str, object]:
        """For logs: every setting, with secrets replaced by whether they are set."""
        out: dict[str, object] = {}
        for key, value in self.__dict__.items():
            if key in {"slack_bot_token", "slack_signing_secret", "slack_app_token"}:
                out[key] = "set" if value else "unset"
            elif key == "redis_url":
                out[key] = redact_url(str(value))
            elif isinstance(value, frozenset):
                out[key] = sorted(value)
            else:
                out[key] = value
        return out


def redact_url(url: str) -> str:
    """Hide the password in redis://user:password@host URLs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if user else f"{scheme}://***@{host}"
