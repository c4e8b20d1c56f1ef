"""aksdns: AKS DNS troubleshooting from Slack (shared, dependency-light core)."""

__version__ = "0.1.0"
