-- Renumbered sources of several pieces: one row per (piece, old source id), with the new
-- source_id shared by every piece that references the same URI (numbered in order of first
-- appearance) and is_first marking the row that represents the URI in the output.
-- Tables: piece_sources. No parameters.
WITH firsts AS (
    SELECT uri, min(piece * 4294967296 + source_id) AS first_key
    FROM piece_sources
    GROUP BY uri
),
numbered AS (
    SELECT uri, CAST(row_number() OVER (ORDER BY first_key) - 1 AS INTEGER) AS new_id, first_key
    FROM firsts
)
SELECT s.piece, s.source_id AS old_id, n.new_id AS source_id, s.uri, s.format, s.size, s.mtime,
       s.etag, s.scanned_at, (s.piece * 4294967296 + s.source_id) = n.first_key AS is_first
FROM piece_sources s JOIN numbered n USING (uri)
ORDER BY n.new_id, s.piece
