-- The chunks table of a concatenation along an existing dimension: one row per chunk. Chunks
-- of arrays with the concatenated dimension come from every piece, their index along it
-- shifted by the piece's chunk offset; other arrays' chunks come from the first piece.
-- No parameters. Tables: piece_arrays, piece_chunks (sources already renumbered), offsets.
WITH firsts AS (
    SELECT "array", min(piece) AS piece FROM piece_arrays GROUP BY "array"
),
along AS (SELECT DISTINCT "array" FROM offsets)
SELECT c."array",
       CASE WHEN o.d IS NULL THEN c.index
            ELSE list_transform(c.index, lambda x, i:
                     CAST(CASE WHEN i = o.d + 1 THEN x + o.chunk_offset ELSE x END AS INTEGER))
       END AS index,
       c.source_id, c."offset", c.length, c.data
FROM piece_chunks c
JOIN firsts f ON f."array" = c."array"
LEFT JOIN offsets o ON o.piece = c.piece AND o."array" = c."array"
WHERE o.d IS NOT NULL OR (c.piece = f.piece AND c."array" NOT IN (SELECT "array" FROM along))
ORDER BY c."array", c.piece, c.pos
