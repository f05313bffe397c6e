-- The grid table of a stack along a new leading dimension: one row per (array, dim, chunk).
-- Stacked arrays get one grid row per piece on dim 0 (chunk = start = piece, length 1) and
-- the first piece's rows of the other dimensions moved one position right.
-- No parameters. Tables: piece_arrays, piece_grid, stacked("array").
SELECT g."array",
       CAST(CASE WHEN s."array" IS NULL THEN g.dim ELSE g.dim + 1 END AS SMALLINT) AS dim,
       g.chunk, g.start, g.length
FROM piece_grid g
LEFT JOIN stacked s ON s."array" = g."array"
WHERE g.piece = 0
UNION ALL
SELECT a."array", CAST(0 AS SMALLINT) AS dim, a.piece AS chunk, CAST(a.piece AS BIGINT) AS start,
       CAST(1 AS BIGINT) AS length
FROM piece_arrays a
JOIN stacked s ON s."array" = a."array"
ORDER BY 1, 2, 3
