-- Where each piece of an array lands when pieces are concatenated along dimension $dim:
-- one row per (array, piece) of arrays that have $dim, with the dimension position d, the
-- piece's extent and chunk count along it, and the running sums of the preceding pieces
-- (chunk_offset, elem_offset) that shift its chunk indices and grid starts.
-- Parameters: $dim (dimension name). Tables: piece_arrays, piece_grid.
WITH along AS (
    SELECT piece, "array",
           CAST(list_position(dims, $dim) - 1 AS SMALLINT) AS d,
           shape[list_position(dims, $dim)] AS extent
    FROM piece_arrays
    WHERE list_contains(dims, $dim)
),
counts AS (
    SELECT a.piece, a."array", a.d, a.extent, count(g.chunk) AS n_chunks
    FROM along a
    LEFT JOIN piece_grid g ON g.piece = a.piece AND g."array" = a."array" AND g.dim = a.d
    GROUP BY a.piece, a."array", a.d, a.extent
)
SELECT piece, "array", d, extent, n_chunks,
       CAST(coalesce(sum(n_chunks) OVER w, 0) AS BIGINT) AS chunk_offset,
       CAST(coalesce(sum(extent) OVER w, 0) AS BIGINT) AS elem_offset
FROM counts
WINDOW w AS (PARTITION BY "array" ORDER BY piece ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
ORDER BY "array", piece
