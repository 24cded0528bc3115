"""The investigators' query language, parsed into a small tree no database ever sees as text.

    refund promised            both words (AND is implied)
    "refund promised"          the exact phrase
    京A12345 OR 京A12346        either
    退款 -投诉 / 退款 NOT 投诉    the first without the second
    (late OR 迟到) AND driver   grouping
    refu*                      prefix
    京A12346~                   near-miss (rapidfuzz; plates heard wrongly)

Terms are folded exactly like the index (:mod:`earwitness.search.normalize`), so
traditional/simplified, full-width/half-width and 五十/50 all meet. Characters that
mean something to FTS5 or tsquery (``: ^ { } NEAR``) are plain text here: the
backends quote every term themselves. Errors say where the query is wrong and
surface as 422, never as a database error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from earwitness.errors import BadInput
from earwitness.search.normalize import fold, is_cjk

MAX_QUERY_CHARS = 500
MAX_TERMS = 16
MAX_DEPTH = 8
# Unquoted CJK runs this long are split into words by jieba (AND), the whole run kept as
# a ranking boost: 司机迟到 finds 司机今天又迟到了, and exact runs still rank first.
JIEBA_MIN_RUN = 4

TermKind = Literal["exact", "prefix", "fuzzy"]


@dataclass(frozen=True)
class Term:
    """One searchable string, already folded. ``short`` terms (under three characters) are
    looked up in the word index; longer ones by substring (trigram)."""

    text: str
    kind: TermKind = "exact"

    @property
    def short(self) -> bool:
        return len(self.text) < 3


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]
    negated: tuple[Node, ...] = ()
    boosts: tuple[Term, ...] = field(default=())


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Term | And | Or


@dataclass(frozen=True)
class _Not:
    item: Node


_Item = Node | _Not


def positive_terms(node: Node) -> list[Term]:
    """Terms whose matches should be highlighted (negated ones never match a hit)."""
    if isinstance(node, Term):
        return [node]
    found = [t for item in node.items for t in positive_terms(item)]
    if isinstance(node, And):
        found.extend(node.boosts)
    return found


def _lex(query: str) -> list[tuple[str, str]]:
    """Split into (kind, text): kinds are phrase, word, lparen, rparen, not."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in '"“”':
            close = _find_closing_quote(query, i + 1)
            if close < 0:
                raise BadInput(f'unbalanced quote at character {i + 1}: close the phrase with "')
            end = close + 1
            suffix = ""
            if end < n and query[end] in "~*":
                suffix, end = query[end], end + 1
            out.append(("phrase", query[i + 1 : close] + suffix))
            i = end
        elif ch in "(（":
            out.append(("lparen", ch))
            i += 1
        elif ch in ")）":
            out.append(("rparen", ch))
            i += 1
        elif ch == "-" and i + 1 < n and not query[i + 1].isspace():  # at a token's start
            out.append(("not", ch))
            i += 1
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] not in '"“”()（）':
                j += 1
            word = query[i:j]
            out.append(("not", word) if word == "NOT" else ("word", word))
            i = j
    return out


def _find_closing_quote(query: str, start: int) -> int:
    for j in range(start, len(query)):
        if query[j] in '"“”':
            return j
    return -1


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.terms = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self) -> Node | None:
        node = self.or_expr(0)
        if self.peek() is not None:
            raise BadInput("unbalanced parenthesis: ')' without a matching '('")
        return node

    def or_expr(self, depth: int) -> Node | None:
        if depth > MAX_DEPTH:
            raise BadInput(f"query nests parentheses deeper than {MAX_DEPTH} levels")
        parts = [self.and_expr(depth)]
        while (tok := self.peek()) is not None and tok == ("word", "OR"):
            self.pos += 1
            parts.append(self.and_expr(depth))
        kept = [p for p in parts if p is not None]
        if any(isinstance(p, _Not) for p in kept):
            raise BadInput(
                "NOT needs something to subtract from: write 'refund -complaint', "
                "not '-complaint' alone or 'refund OR -complaint'"
            )
        nodes = [p for p in kept if not isinstance(p, _Not)]
        if not nodes:
            return None
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def and_expr(self, depth: int) -> _Item | None:
        items: list[_Item] = []
        while (tok := self.peek()) is not None and tok[0] != "rparen" and tok != ("word", "OR"):
            if tok == ("word", "AND"):
                self.pos += 1
                continue
            item = self.unary(depth)
            if item is not None:
                items.append(item)
        positives = tuple(i for i in items if not isinstance(i, _Not))
        negatives = tuple(i.item for i in items if isinstance(i, _Not))
        if not positives:
            return (
                _Not(Or(negatives) if len(negatives) > 1 else negatives[0]) if negatives else None
            )
        if not negatives and len(positives) == 1:
            return positives[0]
        return And(positives, negatives)

    def unary(self, depth: int) -> _Item | None:
        tok = self.peek()
        assert tok is not None
        kind, text = tok
        self.pos += 1
        if kind == "not":
            if self.peek() is None or self.peek() == ("word", "OR"):
                raise BadInput("NOT/'-' at the end of the query has nothing to exclude")
            inner = self.unary(depth)
            if isinstance(inner, _Not):
                raise BadInput("double negation ('NOT NOT', '--') is not supported")
            return None if inner is None else _Not(inner)
        if kind == "lparen":
            node = self.or_expr(depth + 1)
            closing = self.peek()
            if closing is None or closing[0] != "rparen":
                raise BadInput("unbalanced parenthesis: '(' is never closed")
            self.pos += 1
            return node
        if kind == "rparen":
            raise BadInput("unbalanced parenthesis: ')' without a matching '('")
        return self.term(text, phrase=kind == "phrase")

    def term(self, raw: str, *, phrase: bool) -> Node | None:
        term_kind: TermKind = "exact"
        if raw.endswith("~"):
            raw, term_kind = raw[:-1], "fuzzy"
        elif raw.endswith("*"):
            raw, term_kind = raw[:-1], "prefix"
        text = fold(raw).text
        if not text:
            return None  # punctuation only: nothing to look for
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise BadInput(f"query has more than {MAX_TERMS} terms")
        if phrase or term_kind != "exact":
            return Term(text, term_kind)
        return _split_long_cjk(text)


def _split_long_cjk(text: str) -> Node:
    """An unquoted run of Chinese is a sentence more often than a phrase: AND of its jieba
    words, with the whole run as a ranking boost."""
    if len(text) < JIEBA_MIN_RUN or not all(is_cjk(ch) for ch in text):
        return Term(text)
    words = [w for w in _jieba().cut(text, HMM=False) if w.strip()]
    if len(words) < 2:
        return Term(text)
    return And(tuple(Term(w) for w in words), boosts=(Term(text),))


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def parse_query(query: str) -> Node:
    """Parse a user query; raises BadInput with a precise message for anything unusable."""
    if len(query) > MAX_QUERY_CHARS:
        raise BadInput(f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    node = _Parser(_lex(query)).parse()
    if node is None:
        raise BadInput("the query has no searchable text (only punctuation or operators)")
    return node
