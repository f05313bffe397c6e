-- Grid rows that do not tile an array's extent: one row per (array, dim) whose chunks are
-- not numbered 0..n-1, do not start where the previous one ended, or whose lengths do not
-- add up to the array's shape.
-- No parameters. Tables: arrays, grid.
WITH g AS (
    SELECT g.*, lag(g.start + g.length) OVER (PARTITION BY g."array", g.dim ORDER BY g.chunk) AS prev_end,
           row_number() OVER (PARTITION BY g."array", g.dim ORDER BY g.chunk) - 1 AS k
    FROM grid g
),
per_dim AS (
    SELECT "array", dim, sum(length) AS total, min(start) AS first_start,
           bool_or(k <> chunk) AS misnumbered,
           bool_or(prev_end IS NOT NULL AND prev_end <> start) AS not_contiguous,
           bool_or(length <= 0) AS empty_slot
    FROM g GROUP BY "array", dim
)
SELECT 'grid_inconsistent' AS kind, 'error' AS severity, p."array", CAST(NULL AS INTEGER[]) AS chunk,
       CAST(NULL AS VARCHAR) AS source,
       'dimension ' || p.dim || ': ' || concat_ws(', ',
           CASE WHEN p.misnumbered THEN 'chunks are not numbered 0..n-1' END,
           CASE WHEN p.not_contiguous OR p.first_start <> 0 THEN 'chunks do not tile the extent' END,
           CASE WHEN p.empty_slot THEN 'a chunk has no elements' END,
           CASE WHEN p.total <> a.shape[p.dim + 1]
                THEN 'lengths add up to ' || p.total || ', the shape is ' || a.shape[p.dim + 1] END)
           AS detail
FROM per_dim p JOIN arrays a ON a."array" = p."array"
WHERE p.misnumbered OR p.not_contiguous OR p.first_start <> 0 OR p.empty_slot
   OR p.total <> a.shape[p.dim + 1]
ORDER BY p."array", p.dim
