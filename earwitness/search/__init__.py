"""Transcript search for investigators: index (SQLite FTS5 or PostgreSQL), query, history.

Public surface; the modules behind it are ``normalize`` (folding shared by index and
query), ``query`` (the query language), ``backends`` (per-database term lookup),
``indexer``, ``service`` (search) and ``history`` (caller history).
"""

from earwitness.search.history import CallerHistory, caller_history
from earwitness.search.indexer import ReindexReport, index_recording, reindex_all
from earwitness.search.query import parse_query
from earwitness.search.service import (
    SearchFilter,
    SearchHit,
    SearchOptions,
    SearchResult,
    highlight_spans,
    search,
)

__all__ = [
    "CallerHistory",
    "ReindexReport",
    "SearchFilter",
    "SearchHit",
    "SearchOptions",
    "SearchResult",
    "caller_history",
    "highlight_spans",
    "index_recording",
    "parse_query",
    "reindex_all",
    "search",
]
