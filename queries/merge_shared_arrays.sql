-- Arrays present in more than one piece of a merge: one row per (array, later piece) saying
-- whether its chunks are the very same references (same file, offset, length, or same
-- inline bytes) as in the first piece holding it, in which case one copy is kept unread.
-- No parameters. Tables: piece_arrays (with label), piece_chunks, piece_sources.
WITH refs AS (
    SELECT c.piece, c."array",
           list(CAST(c.index AS VARCHAR) || '@' || coalesce(s.uri, '') || ':'
                || coalesce(CAST(c."offset" AS VARCHAR), '') || '+' || CAST(c.length AS VARCHAR)
                || ':' || coalesce(md5(c.data), '')
                ORDER BY CAST(c.index AS VARCHAR)) AS fingerprint
    FROM piece_chunks c
    LEFT JOIN piece_sources s ON s.piece = c.piece AND s.source_id = c.source_id
    GROUP BY c.piece, c."array"
),
holders AS (
    SELECT a.piece, a."array", a.label, r.fingerprint,
           row_number() OVER (PARTITION BY a."array" ORDER BY a.piece) AS k
    FROM piece_arrays a LEFT JOIN refs r ON r.piece = a.piece AND r."array" = a."array"
)
SELECT h."array", h.piece, h.label, f.piece AS first_piece, f.label AS first_label,
       h.fingerprint IS NOT DISTINCT FROM f.fingerprint AS identical
FROM holders h JOIN holders f ON f."array" = h."array" AND f.k = 1
WHERE h.k > 1
ORDER BY h."array", h.piece
