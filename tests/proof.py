"""What a forged RQ job would run: leaves a file behind if it ever runs (tests only).

A worker under test gets this repository on its PYTHONPATH and a directory in
AKSDNS_TEST_PROOF_DIR; any call of :func:`touch` (as a job, or as a job's callback) leaves a
file there.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any


def touch(*args: Any, **kwargs: Any) -> str:
    target = Path(os.environ["AKSDNS_TEST_PROOF_DIR"]) / f"ran-{uuid.uuid4().hex}"
    target.write_text(repr((args, kwargs))[:500])
    return str(target)
