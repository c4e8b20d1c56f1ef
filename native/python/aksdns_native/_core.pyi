class CaptureError(Exception):
    """args are (path, reason)."""

__version__: str

def analyze(
    paths: list[str],
    slow_s: float = 5.0,
    list_limit: int = 1000,
    wireshark44: bool = False,
    trees_only: bool = False,
    shown: int | None = None,
) -> str: ...
def synthesize(path: str, packets: int, seed: int = 1, start_s: float = 1711990000.0) -> int: ...
def draw_png(
    width: int, height: int, ops: list[tuple[str, list[float], tuple[int, int, int], float, str]]
) -> bytes: ...
