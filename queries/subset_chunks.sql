-- The chunks table after selecting [$a, $b) along dimension $dim: one row per chunk kept.
-- Chunk indices along the dimension are re-based (minus c0). For arrays that are
-- byte-sliceable (plain bytes codec, chunk extent 1 on every earlier dimension; row_bytes
-- = bytes of one element-row along $dim) a chunk the selection cuts, or a padded chunk, is
-- narrowed by byte arithmetic: offset + skip * row_bytes, length keep * row_bytes (inline
-- data sliced the same way).
-- Parameters: $a, $b. Tables: chunks, grid, plan (from subset_plan), sliceable("array", row_bytes).
WITH cut AS (
    SELECT c.*, p.d, p.c0, s.row_bytes,
           greatest(g.start, $a) - g.start AS skip,
           least(g.start + g.length, $b) - greatest(g.start, $a) AS keep
    FROM chunks c
    JOIN plan p ON p."array" = c."array"
    JOIN grid g ON g."array" = c."array" AND g.dim = p.d AND g.chunk = c.index[p.d + 1]
    LEFT JOIN sliceable s ON s."array" = c."array"
    WHERE c.index[p.d + 1] BETWEEN p.c0 AND p.c1
),
narrowed AS (
    SELECT *, row_bytes IS NOT NULL AND (skip > 0 OR keep * row_bytes < length) AS narrow
    FROM cut
)
SELECT "array",
       list_transform(index, lambda x, i: CAST(CASE WHEN i = d + 1 THEN x - c0 ELSE x END AS INTEGER))
           AS index,
       source_id,
       CASE WHEN narrow AND data IS NULL THEN "offset" + skip * row_bytes ELSE "offset" END
           AS "offset",
       CASE WHEN narrow THEN keep * row_bytes ELSE length END AS length,
       CASE WHEN narrow AND data IS NOT NULL
            THEN array_slice(data, skip * row_bytes + 1, (skip + keep) * row_bytes)
            ELSE data END AS data
FROM narrowed
UNION ALL
SELECT c."array", c.index, c.source_id, c."offset", c.length, c.data
FROM chunks c
WHERE c."array" NOT IN (SELECT "array" FROM plan)
ORDER BY 1, 2
