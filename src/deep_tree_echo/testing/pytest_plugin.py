"""pytest plugin for deep-tree-echo integrations (fixtures being written)."""

from __future__ import annotations
