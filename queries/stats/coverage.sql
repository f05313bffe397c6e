-- Coverage of each array along each of its dimensions: one row per (array, dim, chunk) with
-- the slot (start, length), the dimension name and how many of the chunks expected in that
-- slice of the grid (the product of the chunk counts of the other dimensions) exist.
-- No parameters. Tables: arrays, grid, chunks.
WITH counts AS (
    SELECT "array", dim, count(*) AS n FROM grid GROUP BY "array", dim
),
expected AS (
    SELECT c."array", c.dim,
           CAST(round(exp(coalesce(sum(ln(o.n)), 0))) AS BIGINT) AS per_slice
    FROM counts c LEFT JOIN counts o ON o."array" = c."array" AND o.dim <> c.dim
    GROUP BY c."array", c.dim
),
present AS (
    SELECT k."array", CAST(u.d - 1 AS SMALLINT) AS dim, u.i AS chunk, count(*) AS chunks
    FROM chunks k,
         LATERAL (SELECT unnest(range(1, len(k.index) + 1)) AS d, unnest(k.index) AS i) u
    GROUP BY ALL
)
SELECT g."array", g.dim, a.dims[g.dim + 1] AS dim_name, g.chunk, g.start, g.length,
       coalesce(p.chunks, 0) AS chunks, e.per_slice AS expected,
       coalesce(p.chunks, 0) / e.per_slice AS fraction
FROM grid g
JOIN arrays a ON a."array" = g."array"
JOIN expected e ON e."array" = g."array" AND e.dim = g.dim
LEFT JOIN present p ON p."array" = g."array" AND p.dim = g.dim AND p.chunk = g.chunk
ORDER BY g."array", g.dim, g.chunk
