-- How a selection [$a, $b) along dimension $dim falls on each array's chunks: one row per
-- array that has $dim, with the dimension position d, the first and last chunk touched
-- (c0, c1), whether the selection starts and ends on chunk boundaries, and for a boundary
-- it misses the nearest boundary on each side (for the error message).
-- Parameters: $dim, $a, $b (element positions, $a < $b). Tables: arrays, grid.
WITH along AS (
    SELECT "array", CAST(list_position(dims, $dim) - 1 AS SMALLINT) AS d,
           shape[list_position(dims, $dim)] AS extent
    FROM arrays WHERE list_contains(dims, $dim)
),
rows_ AS (
    SELECT g.*, a.extent FROM grid g JOIN along a ON a."array" = g."array" AND a.d = g.dim
),
first_ AS (
    SELECT "array", dim AS d, chunk AS c0, start AS s0, start + length AS e0, extent
    FROM rows_ WHERE start <= $a AND $a < start + length
),
last_ AS (
    SELECT "array", chunk AS c1, start AS s1, start + length AS e1
    FROM rows_ WHERE start < $b AND $b <= start + length
)
SELECT a."array", a.d, a.extent, f.c0, l.c1,
       f.s0 = $a AS start_aligned, l.e1 = $b AS end_aligned,
       CASE WHEN $a - f.s0 <= f.e0 - $a THEN f.s0 ELSE f.e0 END AS nearest_to_start,
       CASE WHEN $b - l.s1 <= l.e1 - $b THEN l.s1 ELSE l.e1 END AS nearest_to_end,
       f.s0, f.e0, l.s1, l.e1
FROM along a
LEFT JOIN first_ f ON f."array" = a."array"
LEFT JOIN last_ l ON l."array" = a."array"
ORDER BY a."array"
