-- The grid table of a concatenation along an existing dimension: one row per (array, dim,
-- chunk). Rows along the concatenated dimension come from every piece with chunk index and
-- start shifted by the piece's offsets; rows of other dimensions (and of arrays without the
-- concatenated dimension) come from the first piece that has the array.
-- No parameters. Tables: piece_arrays, piece_grid, offsets (from concat_offsets).
WITH firsts AS (
    SELECT "array", min(piece) AS piece FROM piece_arrays GROUP BY "array"
)
SELECT g."array", g.dim,
       CAST(g.chunk + coalesce(o.chunk_offset, 0) AS INTEGER) AS chunk,
       g.start + coalesce(o.elem_offset, 0) AS start,
       g.length
FROM piece_grid g
JOIN firsts f ON f."array" = g."array"
LEFT JOIN offsets o ON o.piece = g.piece AND o."array" = g."array" AND o.d = g.dim
WHERE o.d IS NOT NULL OR g.piece = f.piece
ORDER BY g."array", g.dim, chunk
