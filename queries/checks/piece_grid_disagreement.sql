-- Pieces about to be concatenated along $dim whose chunk grid along another dimension differs
-- from the first piece's (one combined grid cannot hold both: chunks would land in the wrong
-- place): one row per (array, piece, dimension) with both lists of chunk lengths.
-- Arrays without $dim are taken from the first piece alone and are not compared.
-- Parameters: $dim (concatenated dimension). Tables: piece_arrays, piece_grid,
-- piece_labels(piece, label).
WITH along AS (
    SELECT piece, "array", dims, CAST(list_position(dims, $dim) - 1 AS SMALLINT) AS d
    FROM piece_arrays
    WHERE list_contains(dims, $dim)
),
lengths AS (
    SELECT g.piece, g."array", g.dim, any_value(a.dims) AS dims,
           list(g.length ORDER BY g.chunk) AS lengths
    FROM piece_grid g
    JOIN along a ON a.piece = g.piece AND a."array" = g."array"
    WHERE g.dim <> a.d
    GROUP BY g.piece, g."array", g.dim
),
firsts AS (
    SELECT "array", min(piece) AS piece FROM along GROUP BY "array"
)
SELECT 'disagree_chunk_grid' AS kind, 'error' AS severity, x."array",
       CAST(NULL AS INTEGER[]) AS chunk, l.label AS source,
       'chunks along ' || x.dims[x.dim + 1] || ' are ' || CAST(x.lengths AS VARCHAR)
           || ' here but ' || CAST(f.lengths AS VARCHAR) || ' in ' || fl.label AS detail
FROM lengths x
JOIN firsts p ON p."array" = x."array"
JOIN lengths f ON f."array" = x."array" AND f.piece = p.piece AND f.dim = x.dim
JOIN piece_labels l ON l.piece = x.piece
JOIN piece_labels fl ON fl.piece = p.piece
WHERE x.piece <> p.piece AND x.lengths IS DISTINCT FROM f.lengths
ORDER BY x."array", x.piece, x.dim
