-- Chunks of the grid with no chunk row (they read as the fill value; informational): one
-- row per missing (array, index). Each chunk inside its array's grid gets its C-order
-- position (linear index); one window over the sorted positions finds the gaps between
-- consecutive chunks (and before the first / after the last), and only the positions in
-- the gaps are turned back into indices (mixed-radix decomposition of the per-dim counts).
-- No parameters. Tables: arrays, grid, chunks.
WITH counts AS (
    SELECT "array", dim, count(*) AS n FROM grid GROUP BY "array", dim
),
per_array AS (
    SELECT a."array", len(a.shape) AS ndim,
           coalesce(list(c.n ORDER BY c.dim) FILTER (WHERE c.n IS NOT NULL), []) AS ns
    FROM arrays a LEFT JOIN counts c ON c."array" = a."array"
    GROUP BY a."array", len(a.shape)
),
sized AS (
    SELECT *, list_reduce(list_prepend(CAST(1 AS BIGINT), ns), lambda x, y: x * y) AS total,
           list_transform(range(len(ns)), lambda k:
               list_reduce(list_prepend(CAST(1 AS BIGINT), ns[k + 2:]), lambda x, y: x * y))
               AS strides
    FROM per_array WHERE len(ns) = ndim
),
-- strides and counts as scalar columns: joined to every chunk row, lists would be copied
flat AS (
    SELECT "array", ndim, total,
           strides[1] AS s1, ns[1] AS n1,
           strides[2] AS s2, ns[2] AS n2,
           strides[3] AS s3, ns[3] AS n3,
           strides[4] AS s4, ns[4] AS n4,
           strides[5] AS s5, ns[5] AS n5,
           strides[6] AS s6, ns[6] AS n6
    FROM sized
),
lins AS (
    -- up to 6 dimensions by element access (fast); more through list lambdas
    SELECT c."array", f.total,
           coalesce(c.index[1] * f.s1, 0)
           + coalesce(c.index[2] * f.s2, 0)
           + coalesce(c.index[3] * f.s3, 0)
           + coalesce(c.index[4] * f.s4, 0)
           + coalesce(c.index[5] * f.s5, 0)
           + coalesce(c.index[6] * f.s6, 0) AS lin
    FROM chunks c JOIN flat f ON f."array" = c."array"
    WHERE f.ndim <= 6 AND len(c.index) = f.ndim
      AND (f.ndim < 1 OR (c.index[1] >= 0 AND c.index[1] < f.n1))
      AND (f.ndim < 2 OR (c.index[2] >= 0 AND c.index[2] < f.n2))
      AND (f.ndim < 3 OR (c.index[3] >= 0 AND c.index[3] < f.n3))
      AND (f.ndim < 4 OR (c.index[4] >= 0 AND c.index[4] < f.n4))
      AND (f.ndim < 5 OR (c.index[5] >= 0 AND c.index[5] < f.n5))
      AND (f.ndim < 6 OR (c.index[6] >= 0 AND c.index[6] < f.n6))
    UNION ALL
    SELECT c."array", s.total,
           CAST(list_sum(list_transform(c.index, lambda x, i: x * s.strides[i])) AS BIGINT) AS lin
    FROM chunks c JOIN sized s ON s."array" = c."array"
    WHERE s.ndim > 6 AND len(c.index) = s.ndim
      AND NOT list_bool_or(list_transform(c.index, lambda x, i: x < 0 OR x >= s.ns[i]))
),
ordered AS (
    SELECT "array", lin, lag(lin, 1, -1) OVER w AS prev, lead(lin, 1, total) OVER w AS next
    FROM lins
    WINDOW w AS (PARTITION BY "array" ORDER BY lin)
),
gaps AS (
    SELECT "array", CAST(0 AS BIGINT) AS lo, lin AS hi FROM ordered WHERE prev = -1 AND lin > 0
    UNION ALL
    SELECT "array", lin + 1 AS lo, next AS hi FROM ordered WHERE next > lin + 1
    UNION ALL
    SELECT s."array", 0 AS lo, s.total AS hi
    FROM sized s ANTI JOIN (SELECT DISTINCT "array" FROM lins) l ON l."array" = s."array"
    WHERE s.total > 0
),
missing AS (
    SELECT "array", unnest(range(lo, hi)) AS lin FROM gaps
)
SELECT 'missing_chunk' AS kind, 'info' AS severity, m."array",
       list_transform(range(len(s.ns)), lambda k: CAST((m.lin // s.strides[k + 1]) % s.ns[k + 1]
           AS INTEGER)) AS chunk,
       CAST(NULL AS VARCHAR) AS source, 'no chunk: reads as the fill value' AS detail
FROM missing m JOIN sized s ON s."array" = m."array"
ORDER BY m."array", chunk
