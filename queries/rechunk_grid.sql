-- The grid table after rechunking arrays along one dimension: one row per (array, dim,
-- chunk). A rechunked array's rows along its dimension d are replaced by ceil(extent / n)
-- chunks of n elements (the last cut by the extent); every other row is unchanged.
-- Tables: grid, rechunk_arrays("array", d, n, row_bytes, extent). No parameters.
WITH new_rows AS (
    SELECT "array", d, n, extent, unnest(range(0, (extent + n - 1) // n)) AS k
    FROM rechunk_arrays
)
SELECT g."array", g.dim, g.chunk, g.start, g.length
FROM grid g
WHERE NOT EXISTS (
    SELECT 1 FROM rechunk_arrays r WHERE r."array" = g."array" AND r.d = g.dim
)
UNION ALL
SELECT "array", CAST(d AS SMALLINT) AS dim, CAST(k AS INTEGER) AS chunk, k * n AS start,
       least(n, extent - k * n) AS length
FROM new_rows
ORDER BY 1, 2, 3
