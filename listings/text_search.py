"""The catalog's word search: every word of `q` in the title or the description, ignoring case.

On PostgreSQL words of three characters or more are served by the trigram indexes on title
and description (migration 0011). A two-character word, common in Chinese (光伏, 交通), holds
no trigram, so it is served by a GIN index of the listing text's character pairs
(`text_bigrams`, migration 0013); the ILIKE beside it still decides. SQLite scans.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, and_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, literal
from sqlalchemy.sql.visitors import InternalTraversal

from listings.models import Listing


def text_matches(q: str) -> Any:
    """SQL: every word of `q` appears in the listing's title or description."""
    return and_(*(_word_matches(word) for word in q.split()))


def _word_matches(word: str) -> Any:
    found = or_(Listing.title.icontains(word, autoescape=True),
                Listing.description.icontains(word, autoescape=True))
    if len(word) == 2:
        return and_(HasCharacterPair(word.lower()), found)
    return found


class HasCharacterPair(ColumnElement[bool]):
    """SQL: the listing's text (title, a space, description; lower case) holds this pair of
    characters: on PostgreSQL the expression of the bigram index, elsewhere true."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [("pair", InternalTraversal.dp_string)]

    def __init__(self, pair: str) -> None:
        self.pair = pair


# Written exactly as the index's expression (migration 0013), or PostgreSQL will not use it.
LISTING_TEXT_BIGRAMS = "text_bigrams(lower(listings.title || ' ' || listings.description))"


@compiles(HasCharacterPair, "postgresql")
def _pair_postgresql(element: HasCharacterPair, compiler: SQLCompiler, **kw: Any) -> str:
    pair = compiler.process(literal(element.pair), **kw)
    return f"({LISTING_TEXT_BIGRAMS} @> ARRAY[CAST({pair} AS TEXT)])"


@compiles(HasCharacterPair)
def _pair_elsewhere(element: HasCharacterPair, compiler: SQLCompiler, **kw: Any) -> str:
    return "1"  # SQLite, without booleans, reads it as "1 = 1"
