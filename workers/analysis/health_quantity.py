"""Kubernetes quantities and `kubectl describe node`'s "Allocated resources", figure for figure.

kubectl sums each pod's requests and limits (``resource.Quantity.Add``: the sum keeps the format of
the first term, BinarySI for "70Mi", DecimalSI for "100m"), prints the sums in their canonical form
(``Quantity.String()``) and the share of allocatable as ``int64(float64(sum) / float64(alloc) * 100)``:
truncated, so 157.9 % prints as 157 %. A hand-written parser and formatter because no Python library
reproduces Quantity's canonical text (the kubernetes client's ``parse_quantity`` only reads).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from workers.evidence.health import Usage

BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QTY = re.compile(r"^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    binary: bool = False  # BinarySI (Ki, Mi...) rather than DecimalSI

    @classmethod
    def parse(cls, text: str | None) -> Quantity:
        """A quantity as the API writes it; unreadable or empty text is zero."""
        m = _QTY.match((text or "").strip())
        if not m:
            return cls(Fraction(0))
        number, suffix = Fraction(m.group(1)), m.group(2) or ""
        if suffix in BINARY:
            return cls(number * BINARY[suffix], binary=True)
        if suffix[:1] in ("e", "E"):
            return cls(number * Fraction(10) ** int(suffix[1:]))
        return cls(number * Fraction(10) ** DECIMAL[suffix])

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.binary)  # the first term's format, as Quantity.Add

    @property
    def milli(self) -> int:
        """MilliValue(): rounded up to a whole milli-unit."""
        return _ceil(self.value * 1000)

    @property
    def whole(self) -> int:
        """Value(): rounded up to a whole unit (bytes)."""
        return _ceil(self.value)

    def __str__(self) -> str:
        return canonical(self)


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def canonical(q: Quantity) -> str:
    """Quantity.String(): the canonical form kubectl prints."""
    v = q.value
    if v == 0:
        return "0"
    if q.binary and -1024 < v < 1024:
        binary = False
    else:
        binary = q.binary and v.denominator == 1
    if binary:
        n, exp = int(v), 0
        while n % 1024 == 0 and exp < 6:
            n //= 1024
            exp += 1
        return f"{n}{['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'][exp]}"
    # DecimalSI: round up to a whole nano-unit (Quantity keeps at most 9 decimal places), then the
    # largest exponent, a multiple of 3, that leaves an integer mantissa.
    n, exp = _ceil(v * 10**9), -9
    while n % 1000 == 0 and exp < 18:
        n //= 1000
        exp += 3
    suffix = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}[exp]
    return f"{n}{suffix}"


# ---------------------------------------------------------------------------- pod sums


def _add(total: dict[str, Quantity], name: str, q: Quantity) -> None:
    total[name] = total[name] + q if name in total else q


def _max(total: dict[str, Quantity], name: str, q: Quantity) -> None:
    if name not in total or q.value > total[name].value:
        total[name] = q


def pod_requests_and_limits(pod: Mapping[str, Any]) -> tuple[dict[str, Quantity], dict[str, Quantity]]:
    """resourcehelper.PodRequestsAndLimits: containers summed, sidecars added, the largest init
    container when it needs more than the rest, plus the pod's overhead. ``pod`` is the API's JSON."""
    spec = pod.get("spec") or {}
    out: list[dict[str, Quantity]] = []
    for key in ("requests", "limits"):
        total: dict[str, Quantity] = {}
        for c in spec.get("containers") or []:
            for name, text in ((c.get("resources") or {}).get(key) or {}).items():
                _add(total, name, Quantity.parse(text))
        sidecars: dict[str, Quantity] = {}
        for c in spec.get("initContainers") or []:
            res = (c.get("resources") or {}).get(key) or {}
            if c.get("restartPolicy") == "Always":  # a sidecar runs beside the containers
                for name, text in res.items():
                    _add(total, name, Quantity.parse(text))
                    _add(sidecars, name, Quantity.parse(text))
            else:
                for name, text in res.items():
                    q = Quantity.parse(text)
                    _max(total, name, Quantity(q.value + (sidecars[name].value if name in sidecars else 0), q.binary))
        for name, text in (spec.get("overhead") or {}).items():
            _add(total, name, Quantity.parse(text))
        out.append(total)
    return out[0], out[1]


@dataclass(frozen=True)
class Allocated:
    """The four figures of "Allocated resources" for CPU and memory, with kubectl's percentages."""

    cpu_requests: str
    cpu_requests_pct: int
    cpu_limits: str
    cpu_limits_pct: int
    memory_requests: str
    memory_requests_pct: int
    memory_limits: str
    memory_limits_pct: int
    # The rows kubectl prints after cpu and memory: ephemeral-storage, then hugepages-* of allocatable.
    other_rows: tuple[tuple[str, str, int, str, int], ...] = ()


def _pct(part: int, whole: int) -> int:
    # int64(float64(part) / float64(whole) * 100): float arithmetic and truncation, exactly as kubectl.
    return int(float(part) / float(whole) * 100) if whole else 0


def allocated(pods: Sequence[Mapping[str, Any]], allocatable: Mapping[str, str]) -> Allocated:
    """What `kubectl describe node` prints for the node's non-terminated ``pods`` (in API order)."""
    reqs: dict[str, Quantity] = {}
    lims: dict[str, Quantity] = {}
    for pod in pods:
        r, lim = pod_requests_and_limits(pod)
        for name, q in r.items():
            _add(reqs, name, q)
        for name, q in lim.items():
            _add(lims, name, q)
    zero = Quantity(Fraction(0))
    cpu_alloc = Quantity.parse(allocatable.get("cpu")).milli
    mem_alloc = Quantity.parse(allocatable.get("memory")).whole
    cr, cl = reqs.get("cpu", zero), lims.get("cpu", zero)
    mr, ml = reqs.get("memory", zero), lims.get("memory", zero)
    others = []
    for name in ["ephemeral-storage", *sorted(k for k in allocatable if k.startswith("hugepages-"))]:
        total = Quantity.parse(allocatable.get(name)).whole
        req_q, lim_q = reqs.get(name, zero), lims.get(name, zero)
        others.append((name, str(req_q), _pct(req_q.whole, total), str(lim_q), _pct(lim_q.whole, total)))
    return Allocated(
        other_rows=tuple(others),
        cpu_requests=str(cr), cpu_requests_pct=_pct(cr.milli, cpu_alloc),
        cpu_limits=str(cl), cpu_limits_pct=_pct(cl.milli, cpu_alloc),
        memory_requests=str(mr), memory_requests_pct=_pct(mr.whole, mem_alloc),
        memory_limits=str(ml), memory_limits_pct=_pct(ml.whole, mem_alloc),
    )


def non_terminated_on(pods: Iterable[Mapping[str, Any]], node: str) -> list[Mapping[str, Any]]:
    """The node's pods kubectl counts (phase not Succeeded/Failed), in namespace/name order as listed."""
    chosen = [p for p in pods if (p.get("spec") or {}).get("nodeName") == node
              and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    return sorted(chosen, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"].get("name", "")))


def cpu_m(text: str | None) -> int:
    return Quantity.parse(text).milli


def memory_b(text: str | None) -> int:
    return Quantity.parse(text).whole


def top_cpu(text: str | None) -> int:
    """`kubectl top`'s CPU column: MilliValue()."""
    return Quantity.parse(text).milli


def top_memory_mi(text: str | None) -> int:
    """`kubectl top`'s memory column: Value() / (1024*1024), integer division."""
    return Quantity.parse(text).whole // (1024 * 1024)


def usage_from(item: Mapping[str, Any]) -> Usage:
    """A PodMetrics / NodeMetrics item → `kubectl top`'s figures: a pod's containers are summed as
    quantities first, then printed as MilliValue() and Value()/MiB, as `kubectl top pod` does."""
    if "containers" in item:
        cpu = Quantity(Fraction(0))
        mem = Quantity(Fraction(0), binary=True)
        for c in item.get("containers") or []:
            usage = c.get("usage") or {}
            cpu = cpu + Quantity.parse(usage.get("cpu"))
            mem = mem + Quantity.parse(usage.get("memory"))
        cpu_m, memory_mi = cpu.milli, mem.whole // (1024 * 1024)
    else:
        usage = item.get("usage") or {}
        cpu_m, memory_mi = top_cpu(usage.get("cpu")), top_memory_mi(usage.get("memory"))
    window = str(item.get("window") or "").rstrip("s")
    try:
        window_s = float(window) if window else 0.0
    except ValueError:
        window_s = 0.0
    return Usage(cpu_m=cpu_m, memory_mi=memory_mi, window_s=window_s, timestamp=str(item.get("timestamp") or ""))
