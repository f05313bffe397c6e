-- Which chunk rows a concatenation along an existing dimension keeps, and how their index
-- changes: one row per kept (piece, array). Arrays with the concatenated dimension keep the
-- rows of every piece, their index at position d shifted by the piece's chunk offset; other
-- arrays keep the rows of the first piece holding them (d NULL, shift 0). lead is always NULL
-- (no index is put in front). Applied to the chunk rows by vzsql.ops.piece_chunks.
-- No parameters. Tables: piece_arrays, offsets (from concat_offsets).
WITH firsts AS (
    SELECT "array", min(piece) AS piece FROM piece_arrays GROUP BY "array"
),
along AS (SELECT DISTINCT "array" FROM offsets)
SELECT piece, "array", d, chunk_offset AS shift, CAST(NULL AS INTEGER) AS lead
FROM offsets
UNION ALL
SELECT f.piece, f."array", CAST(NULL AS SMALLINT), CAST(0 AS BIGINT), CAST(NULL AS INTEGER)
FROM firsts f ANTI JOIN along a ON a."array" = f."array"
