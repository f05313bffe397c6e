-- Arrays of a combined manifest whose chunks cannot all be served by the plain bytes codec:
-- one row per such array with the distinct stored chunk shapes of its pieces. An array
-- needs the trimming codec when its pieces store chunks of different shapes, or when a
-- chunk that is not the last along a dimension has a slot shorter (or longer) than the
-- stored chunk (an HDF5 padded edge chunk now in the middle of the array).
-- No parameters. Tables: piece_arrays, grid, arrays (the combined tables).
WITH shapes AS (
    SELECT "array", list(DISTINCT chunk_shape ORDER BY chunk_shape) AS chunk_shapes,
           count(DISTINCT chunk_shape) AS n_shapes
    FROM piece_arrays GROUP BY "array"
),
last_chunk AS (
    SELECT "array", dim, max(chunk) AS last FROM grid GROUP BY "array", dim
),
irregular AS (
    SELECT g."array",
           bool_or((g.chunk < l.last AND g.length <> a.chunk_shape[g.dim + 1])
                   OR g.length > a.chunk_shape[g.dim + 1]) AS irregular
    FROM grid g
    JOIN last_chunk l ON l."array" = g."array" AND l.dim = g.dim
    JOIN arrays a ON a."array" = g."array"
    GROUP BY g."array"
)
SELECT s."array", s.chunk_shapes
FROM shapes s
LEFT JOIN irregular i ON i."array" = s."array"
WHERE s.n_shapes > 1 OR coalesce(i.irregular, false)
ORDER BY s."array"
