-- Pieces about to be concatenated along $dim whose chunk grid along another dimension differs
-- from the first piece's (one combined grid cannot hold both: chunks would land in the wrong
-- place): one row per (array, piece, dimension) with both lists of chunk lengths.
-- Arrays without $dim are taken from the first piece alone and are not compared.
-- Parameters: $dim (concatenated dimension). Tables: piece_arrays, piece_grid,
-- piece_labels(piece, label).
WITH along AS (
    SELECT piece, "array", dims, CAST(list_position(dims, $dim) - 1 AS SMALLINT) AS d,
           min(piece) OVER (PARTITION BY "array") AS first_piece
    FROM piece_arrays
    WHERE list_contains(dims, $dim)
),
rows AS (
    SELECT g.piece, g."array", g.dim, g.chunk, g.length, a.first_piece
    FROM piece_grid g
    JOIN along a ON a.piece = g.piece AND a."array" = g."array"
    WHERE g.dim <> a.d
),
firsts AS (
    SELECT "array", dim, chunk, length FROM rows WHERE piece = first_piece
),
first_counts AS (
    SELECT "array", dim, count(*) AS n FROM firsts GROUP BY "array", dim
),
-- a piece differs if one of its grid rows has no equal row in the first piece, or if it
-- has fewer rows along that dimension
differ AS (
    SELECT DISTINCT r.piece, r."array", r.dim
    FROM rows r
    ANTI JOIN firsts f
        ON f."array" = r."array" AND f.dim = r.dim AND f.chunk = r.chunk AND f.length = r.length
    UNION
    SELECT r.piece, r."array", r.dim
    FROM rows r JOIN first_counts c ON c."array" = r."array" AND c.dim = r.dim
    GROUP BY r.piece, r."array", r.dim, c.n
    HAVING count(*) <> c.n
),
described AS (
    SELECT d.piece, d."array", d.dim, any_value(r.first_piece) AS first_piece,
           list(r.length ORDER BY r.chunk) AS lengths
    FROM differ d
    JOIN rows r ON r.piece = d.piece AND r."array" = d."array" AND r.dim = d.dim
    GROUP BY d.piece, d."array", d.dim
)
SELECT 'disagree_chunk_grid' AS kind, 'error' AS severity, x."array",
       CAST(NULL AS INTEGER[]) AS chunk, l.label AS source,
       'chunks along ' || a.dims[x.dim + 1] || ' are ' || CAST(x.lengths AS VARCHAR)
           || ' here but '
           || CAST((SELECT list(f.length ORDER BY f.chunk) FROM firsts f
                    WHERE f."array" = x."array" AND f.dim = x.dim) AS VARCHAR)
           || ' in ' || fl.label AS detail
FROM described x
JOIN along a ON a.piece = x.piece AND a."array" = x."array"
JOIN piece_labels l ON l.piece = x.piece
JOIN piece_labels fl ON fl.piece = x.first_piece
ORDER BY x."array", x.piece, x.dim
