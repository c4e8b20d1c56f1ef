"""Settings from the environment, read once by the composition roots (never at import)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aksdns.dig_policy import DigPolicy
from aksdns.errors import AksDnsError

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Settings whose values never reach a log: ``redacted`` shows only whether they are set.
SECRETS = frozenset({"slack_bot_token", "slack_signing_secret", "slack_app_token", "job_signing_key"})


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


AZURE_ARM_URL = "https://management.azure.com"
AZURE_AUTHORITY = "https://login.microsoftonline.com"


@dataclass(frozen=True)
class AzureAccess:
    """Where the managed cluster is in Azure and the workload identity that may read it (`apiserver`).

    The AZURE_* variables are what AKS's workload identity webhook injects; the cluster's resource id is
    ours. Without them `apiserver` says which `az aks show` to run instead.
    """

    cluster_id: str = ""  # AKSDNS_AZURE_CLUSTER_ID: /subscriptions/…/managedClusters/NAME
    arm_url: str = AZURE_ARM_URL  # AKSDNS_AZURE_ARM_URL (sovereign clouds; the tests' stand-in)
    client_id: str = ""  # AZURE_CLIENT_ID
    tenant_id: str = ""  # AZURE_TENANT_ID
    token_file: str = ""  # AZURE_FEDERATED_TOKEN_FILE
    authority_host: str = AZURE_AUTHORITY  # AZURE_AUTHORITY_HOST
    ca_bundle: str = ""  # AKSDNS_AZURE_CA_BUNDLE: a private CA for ARM and the token endpoint

    @property
    def configured(self) -> bool:
        return bool(self.cluster_id and self.client_id and self.tenant_id and self.token_file)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AzureAccess:
        return cls(
            cluster_id=env.get("AKSDNS_AZURE_CLUSTER_ID", "").strip(),
            arm_url=(env.get("AKSDNS_AZURE_ARM_URL") or AZURE_ARM_URL).rstrip("/"),
            client_id=env.get("AZURE_CLIENT_ID", ""),
            tenant_id=env.get("AZURE_TENANT_ID", ""),
            token_file=env.get("AZURE_FEDERATED_TOKEN_FILE", ""),
            authority_host=(env.get("AZURE_AUTHORITY_HOST") or AZURE_AUTHORITY).rstrip("/"),
            ca_bundle=env.get("AKSDNS_AZURE_CA_BUNDLE", ""),
        )


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
    azure: AzureAccess = AzureAccess()  # `apiserver`: the cluster's Azure settings (optional)
    job_signing_key: str = ""  # HMAC key of job specs, shared by the bot and the workers
    rate_per_user: int = 10  # commands a person may queue per minute (0: no limit)
    rate_per_channel: int = 30  # commands a channel may queue per minute (0: no limit)
    metrics_port: int = 0  # Prometheus /metrics port of this process (0: not served)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a pod's metrics are scraped from outside it

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
            azure=AzureAccess.from_env(env),
            job_signing_key=env.get("AKSDNS_JOB_SIGNING_KEY", ""),
            rate_per_user=int(_float(env, "AKSDNS_RATE_PER_USER", 10)),
            rate_per_channel=int(_float(env, "AKSDNS_RATE_PER_CHANNEL", 30)),
            metrics_port=int(_float(env, "AKSDNS_METRICS_PORT", 0)),
            metrics_host=env.get("AKSDNS_METRICS_HOST") or "0.0.0.0",  # noqa: S104
        )

    def redacted(self) -> dict[str, object]:
        """For logs: every setting, with secrets replaced by whether they are set."""
        out: dict[str, object] = {}
        for key, value in self.__dict__.items():
            if key in SECRETS:
                out[key] = "set" if value else "unset"
            elif key == "redis_url":
                out[key] = redact_url(str(value))
            elif isinstance(value, AzureAccess):
                out[key] = {"cluster_id": value.cluster_id, "configured": value.configured}
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
