"""search: newest-first postings of the word index (issue 17, PostgreSQL)

PostgreSQL only. GIN keeps neither positions nor an order by segment id, so finding the
newest 10 001 segments holding 京 (44 000 at 1 M segments) read the whole posting list and
visited one heap page per match: 140-200 ms, barely faster than a ``LIKE`` scan.
``search_fts_postings`` holds, per word-index key and block of 4 096 segment ids, the
sorted offsets of the segments holding it in that block:

- ``gram`` 1: every lexeme of ``search_fts_tsv``, with ``masks`` beside ``ids``: the
  positions the lexeme holds in each segment (bit p - 1 for position p <= 63, bit 63 for
  any beyond), so a phrase of words is decided from the postings alone;
- ``gram`` 2: ``'a b'`` for two one-character lexemes at adjacent positions — exactly what
  the phrase ``'a' <-> 'b'`` matches, so a two-character Chinese term (迟到) is one key.

Read newest block first through the primary key, the newest matches of 您 (30 % of the
segments) are in 8 rows of 2.5 kB. The rows are derived from the same tsvector the GIN
index serves, in SQL, by statement-level triggers on ``search_segments`` (insert, delete,
update, truncate), so they can never disagree with it; the search tests compare them.
``lexeme`` is collated "C" so a prefix (``ok*``) is a range of the key. The names carry the
``search_fts`` prefix: engine-specific, outside the models-vs-schema comparison, like the
FTS5 tables on SQLite.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# The keys of one tsvector: its lexemes with the positions they hold (bit p - 1 for
# position p <= 63; bit 63 when a position is beyond), and adjacent one-character pairs.
# (Unnested once, materialised: 4-5x faster than unnesting it per branch.)
_GRAMS = """
CREATE FUNCTION search_fts_grams(tsv tsvector)
RETURNS TABLE (gram smallint, lexeme text, mask bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH l AS MATERIALIZED (SELECT u.lexeme, u.positions FROM unnest(tsv) AS u),
    p AS MATERIALIZED (SELECT l.lexeme, q FROM l, unnest(l.positions) AS q
                       WHERE char_length(l.lexeme) = 1)
    SELECT 1::smallint, l.lexeme,
           (SELECT bit_or(CASE WHEN q <= 63 THEN 1::bigint << (q - 1) ELSE 1::bigint << 63 END)
            FROM unnest(l.positions) AS q)
    FROM l
    UNION ALL
    SELECT DISTINCT 2::smallint, a.lexeme || ' ' || b.lexeme, NULL::bigint
    FROM p AS a JOIN p AS b ON b.q = a.q + 1
$$
"""

# Keys are written in (gram, lexeme, block) order so concurrent indexers lock rows in the
# same order; an existing row is merged (offsets stay sorted, masks beside their offsets).
# Segments are indexed in id order almost always, so the new offsets usually follow the old
# ones and are appended; else the arrays are merged (sorted, distinct).
_ADD = """
    INSERT INTO search_fts_postings AS p (gram, lexeme, block, ids, masks)
    SELECT g.gram, g.lexeme, n.segment_id >> 12,
           array_agg((n.segment_id & 4095)::smallint ORDER BY n.segment_id),
           CASE WHEN g.gram = 1 THEN array_agg(g.mask ORDER BY n.segment_id) END
    FROM new_rows AS n, search_fts_grams(n.search_fts_tsv) AS g
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (gram, lexeme, block) DO UPDATE SET
        ids = CASE WHEN excluded.ids[1] > p.ids[cardinality(p.ids)]
                   THEN p.ids || excluded.ids
                   ELSE (SELECT array_agg(o ORDER BY o) FROM (SELECT DISTINCT unnest(
                         p.ids || excluded.ids)) AS u (o)) END,
        masks = CASE WHEN p.gram <> 1 THEN NULL
                     WHEN excluded.ids[1] > p.ids[cardinality(p.ids)]
                     THEN p.masks || excluded.masks
                     ELSE (SELECT array_agg(m ORDER BY o) FROM (SELECT DISTINCT ON (o) o, m
                           FROM unnest(p.ids || excluded.ids, p.masks || excluded.masks)
                           AS u (o, m) ORDER BY o) AS merged) END;
"""

# Removing: rows left empty go, the others lose the offsets (and their masks).
_GONE = """(SELECT g.gram, g.lexeme, o.segment_id >> 12 AS block,
                  array_agg((o.segment_id & 4095)::smallint) AS offs
           FROM old_rows AS o, search_fts_grams(o.search_fts_tsv) AS g
           GROUP BY 1, 2, 3) AS gone"""
_REMOVE = f"""
    DELETE FROM search_fts_postings AS p USING {_GONE}
    WHERE p.gram = gone.gram AND p.lexeme = gone.lexeme AND p.block = gone.block
      AND p.ids <@ gone.offs;
    UPDATE search_fts_postings AS p SET (ids, masks) = (
        SELECT array_agg(o ORDER BY o), CASE WHEN p.gram = 1 THEN array_agg(m ORDER BY o) END
        FROM unnest(p.ids, p.masks) AS u (o, m) WHERE o <> ALL (gone.offs)
    )
    FROM {_GONE}
    WHERE p.gram = gone.gram AND p.lexeme = gone.lexeme AND p.block = gone.block;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE search_fts_postings ("
        " gram smallint NOT NULL,"
        ' lexeme text COLLATE "C" NOT NULL,'
        " block integer NOT NULL,"
        " ids smallint[] NOT NULL,"
        " masks bigint[],"
        " PRIMARY KEY (gram, lexeme, block))"
    )
    op.execute(_GRAMS)
    for name, body in (
        ("insert", _ADD),
        ("delete", _REMOVE),
        ("update", _REMOVE + _ADD),
    ):
        op.execute(
            f"CREATE FUNCTION search_fts_postings_{name}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
        )
    op.execute(
        "CREATE TRIGGER search_fts_postings_insert AFTER INSERT ON search_segments "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION search_fts_postings_insert()"
    )
    op.execute(
        "CREATE TRIGGER search_fts_postings_delete AFTER DELETE ON search_segments "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION search_fts_postings_delete()"
    )
    op.execute(
        "CREATE TRIGGER search_fts_postings_update AFTER UPDATE ON search_segments "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION search_fts_postings_update()"
    )
    op.execute(
        "CREATE FUNCTION search_fts_postings_truncate() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN TRUNCATE search_fts_postings; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER search_fts_postings_truncate AFTER TRUNCATE ON search_segments "
        "FOR EACH STATEMENT EXECUTE FUNCTION search_fts_postings_truncate()"
    )
    op.execute(
        "INSERT INTO search_fts_postings (gram, lexeme, block, ids, masks) "
        "SELECT g.gram, g.lexeme, s.segment_id >> 12, "
        "array_agg((s.segment_id & 4095)::smallint ORDER BY s.segment_id), "
        "CASE WHEN g.gram = 1 THEN array_agg(g.mask ORDER BY s.segment_id) END "
        "FROM search_segments AS s, search_fts_grams(s.search_fts_tsv) AS g GROUP BY 1, 2, 3"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS search_fts_postings_{name} ON search_segments")
        op.execute(f"DROP FUNCTION IF EXISTS search_fts_postings_{name}()")
    op.execute("DROP FUNCTION IF EXISTS search_fts_grams(tsvector)")
    op.execute("DROP TABLE IF EXISTS search_fts_postings")
