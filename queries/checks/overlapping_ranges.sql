-- Chunks whose byte range overlaps the range of another chunk in the same file: one row
-- per chunk that starts before an earlier-starting chunk of its file has ended.
-- One window over the integer ranges (running maximum of the ends before each chunk); the
-- chunk that ends last before an overlapping one is looked up for those rows only.
-- No parameters. Tables: sources, chunks.
WITH r AS (
    SELECT c."array", c.index, c.source_id, c."offset", c."offset" + c.length AS stop
    FROM chunks c
    WHERE c.data IS NULL AND c.source_id IS NOT NULL AND c.length > 0
),
w AS (
    SELECT *, max(stop) OVER prior AS prior_stop
    FROM r
    WINDOW prior AS (PARTITION BY source_id ORDER BY "offset", stop, "array", index
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
flagged AS (
    SELECT * FROM w WHERE prior_stop > "offset"
),
culprit AS (
    -- the earlier chunk (in the window's order) whose range ends at prior_stop; none
    -- strictly earlier means an identical row (same array, index and range) came first
    SELECT f."array", f.index, f.source_id, f."offset", f.stop,
           min(p."array" || ' ' || CAST(p.index AS VARCHAR)) AS prior_chunk
    FROM flagged f
    JOIN r p ON p.source_id = f.source_id AND p.stop = f.prior_stop
    WHERE (p."offset", p.stop, p."array", p.index) < (f."offset", f.stop, f."array", f.index)
    GROUP BY f."array", f.index, f.source_id, f."offset", f.stop
)
SELECT 'overlapping_ranges' AS kind, 'error' AS severity, f."array", f.index AS chunk,
       s.uri AS source,
       'bytes ' || f."offset" || '..' || f.stop || ' overlap chunk '
           || coalesce(c.prior_chunk, f."array" || ' ' || CAST(f.index AS VARCHAR))
           || ' (ends at ' || f.prior_stop || ')' AS detail
FROM flagged f
LEFT JOIN culprit c ON c."array" = f."array" AND c.index IS NOT DISTINCT FROM f.index
                   AND c.source_id = f.source_id AND c."offset" = f."offset" AND c.stop = f.stop
LEFT JOIN sources s ON s.source_id = f.source_id
ORDER BY f."array", f.index
