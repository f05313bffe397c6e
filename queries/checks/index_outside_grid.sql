-- Chunks whose index does not fit the array's grid (wrong number of dimensions, negative,
-- or at or past the number of chunks along a dimension), or whose array is unknown: one
-- row per such chunk.
-- No parameters. Tables: arrays, grid, chunks.
WITH counts AS (
    SELECT "array", dim, count(*) AS n FROM grid GROUP BY "array", dim
),
per_array AS (
    SELECT a."array", len(a.shape) AS ndim,
           list(c.n ORDER BY c.dim) FILTER (WHERE c.n IS NOT NULL) AS ns
    FROM arrays a LEFT JOIN counts c ON c."array" = a."array"
    GROUP BY a."array", len(a.shape)
)
SELECT 'index_outside_grid' AS kind, 'error' AS severity, c."array", c.index AS chunk,
       CAST(NULL AS VARCHAR) AS source,
       CASE WHEN p."array" IS NULL THEN 'chunk of an array that is not in arrays'
            WHEN len(c.index) <> p.ndim
                THEN 'index has ' || len(c.index) || ' dimensions, the array ' || p.ndim
            ELSE 'index outside the grid of ' || CAST(coalesce(p.ns, []) AS VARCHAR) || ' chunks'
       END AS detail
FROM chunks c
LEFT JOIN per_array p ON p."array" = c."array"
WHERE p."array" IS NULL
   OR len(c.index) <> p.ndim
   OR list_bool_or(list_transform(c.index, lambda x, i:
          x < 0 OR p.ns IS NULL OR len(p.ns) < i OR x >= p.ns[i]))
ORDER BY c."array", c.index
