-- The grid table after selecting [$a, $b) along dimension $dim: one row per (array, dim,
-- chunk) kept. Rows of the selected dimension between the first and last chunk touched are
-- re-based (chunk - c0, start - $a) and cut to the selection; other rows are unchanged.
-- Parameters: $a, $b. Tables: grid, plan (from subset_plan).
SELECT g."array", g.dim,
       CAST(CASE WHEN p.d IS NULL THEN g.chunk ELSE g.chunk - p.c0 END AS INTEGER) AS chunk,
       CASE WHEN p.d IS NULL THEN g.start ELSE greatest(g.start, $a) - $a END AS start,
       CASE WHEN p.d IS NULL THEN g.length
            ELSE least(g.start + g.length, $b) - greatest(g.start, $a) END AS length
FROM grid g
LEFT JOIN plan p ON p."array" = g."array" AND p.d = g.dim
WHERE p.d IS NULL OR g.chunk BETWEEN p.c0 AND p.c1
ORDER BY g."array", g.dim, chunk
