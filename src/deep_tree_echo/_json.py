"""The one compact JSON encoder shared by every JSON answer (HTTP bodies, WebSocket frames).

``json.dumps`` with non-default options builds a new ``JSONEncoder`` per call; this one is
built once. Values JSON cannot hold are written as ``str(value)``.
"""

from __future__ import annotations

import json
from typing import Final

COMPACT_ENCODER: Final = json.JSONEncoder(default=str, separators=(",", ":"))
