"""``memory import``: validate a JSON-lines file, then store its valid lines concurrently.

A line with a ``version`` (an export: ``MemoryRecord.to_dict()``) is *restored*: applied
last-writer-wins with its version, timestamps, access counts and expiry, so restoring never
overwrites a newer edit and recency stays true. A line without one (``{"id", "data"}``, older
exports) is written as a new version, as ``memory put`` would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deep_tree_echo.aar_core.memory.manager import validate_memory_id
from deep_tree_echo.aar_core.memory.record import parse_record
from deep_tree_echo.cli._backends import Backend
from deep_tree_echo.cli.errors import CLIError
from deep_tree_echo.errors import EchoError


@dataclass(slots=True)
class ImportLine:
    """One valid line of an import file: where it was and what to store."""

    line_no: int
    id: str
    data: dict[str, Any]
    expires_at: float | None = None
    deleted: bool = False
    #: the whole record (``MemoryRecord.to_dict()``) when the line carries a version
    record: dict[str, Any] | None = None


@dataclass(slots=True)
class ImportReport:
    valid: int = 0
    created: int = 0
    updated: int = 0
    restored: int = 0  # versioned lines applied (newer than what the store held)
    kept: int = 0  # versioned lines the store already held at the same or a newer version
    skipped: int = 0  # tombstones and expired records
    failed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def parse_import_line(line_no: int, text: str) -> ImportLine:
    """Validate one JSON line (``MemoryRecord.to_dict()`` or ``{"id", "data"}``)."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    memory_id = obj.get("id")
    try:
        validate_memory_id(memory_id)
    except EchoError as exc:
        raise ValueError(exc.message) from exc
    assert isinstance(memory_id, str)
    data = obj.get("data")
    if not isinstance(data, dict):
        raise ValueError("'data' must be a JSON object")
    expires_at = obj.get("expires_at")
    if expires_at is not None and (
        isinstance(expires_at, bool) or not isinstance(expires_at, int | float)
    ):
        raise ValueError("'expires_at' must be a number or null")
    deleted = obj.get("deleted", False)
    if not isinstance(deleted, bool):
        raise ValueError("'deleted' must be true or false")
    record = None
    if obj.get("version") is not None:
        try:
            record = parse_record(obj).to_dict()
        except EchoError as exc:
            raise ValueError(exc.message) from exc
    return ImportLine(line_no, memory_id, data, expires_at, deleted, record)


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                yield line_no, line


def validate_import_file(path: Path, report: ImportReport) -> None:
    """First pass: count valid lines and record every bad one with its line number."""
    try:
        for line_no, text in _iter_lines(path):
            try:
                parse_import_line(line_no, text)
            except ValueError as exc:
                report.errors.append((line_no, str(exc)))
            else:
                report.valid += 1
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc}") from exc


async def import_file(
    backend: Backend,
    path: Path,
    report: ImportReport,
    *,
    concurrency: int | None = None,
    advance: Callable[[int], None] = lambda n: None,
) -> None:
    """Second pass: store every valid line; a failed write is reported, the rest continue.

    Up to ``concurrency`` writes (default: the backend's ``write_concurrency``) run at once;
    a batch never holds the same id twice, so a later line for an id always wins over an
    earlier one.
    """
    if concurrency is None:
        concurrency = backend.write_concurrency
    now = time.time()
    batch: list[ImportLine] = []
    ids: set[str] = set()

    async def store(item: ImportLine) -> None:
        if item.record is not None:
            await restore(item, item.record)
            return
        ttl = None if item.expires_at is None else item.expires_at - now
        try:
            _, created = await backend.put(item.id, item.data, ttl)
        except EchoError as exc:
            report.failed += 1
            report.errors.append((item.line_no, exc.message))
        else:
            if created:
                report.created += 1
            else:
                report.updated += 1

    async def restore(item: ImportLine, record: dict[str, Any]) -> None:
        try:
            applied = await backend.restore(record)
        except EchoError as exc:
            report.failed += 1
            report.errors.append((item.line_no, exc.message))
            return
        if applied:
            report.restored += 1
        else:
            report.kept += 1

    async def flush() -> None:
        await asyncio.gather(*(store(item) for item in batch))
        advance(len(batch))
        batch.clear()
        ids.clear()

    for line_no, text in _iter_lines(path):
        try:
            item = parse_import_line(line_no, text)
        except ValueError:
            continue  # reported by the validation pass
        unversioned_gone = item.deleted or (item.expires_at is not None and item.expires_at <= now)
        if item.record is None and unversioned_gone:
            report.skipped += 1
            advance(1)
            continue
        if item.id in ids or len(batch) >= concurrency:
            await flush()
        batch.append(item)
        ids.add(item.id)
    await flush()
