-- Chunks whose byte range overlaps the range of another chunk in the same file: one row
-- per chunk that starts before an earlier-starting chunk of its file has ended.
-- No parameters. Tables: sources, chunks.
WITH r AS (
    SELECT c."array", c.index, c.source_id, c."offset", c."offset" + c.length AS stop
    FROM chunks c
    WHERE c.data IS NULL AND c.source_id IS NOT NULL AND c.length > 0
),
w AS (
    SELECT *,
           max(stop) OVER prior AS prior_stop,
           arg_max("array" || ' ' || CAST(index AS VARCHAR), stop) OVER prior AS prior_chunk
    FROM r
    WINDOW prior AS (PARTITION BY source_id ORDER BY "offset", stop, "array", index
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT 'overlapping_ranges' AS kind, 'error' AS severity, w."array", w.index AS chunk,
       s.uri AS source,
       'bytes ' || w."offset" || '..' || w.stop || ' overlap chunk ' || w.prior_chunk
           || ' (ends at ' || w.prior_stop || ')' AS detail
FROM w LEFT JOIN sources s ON s.source_id = w.source_id
WHERE w.prior_stop > w."offset"
ORDER BY w."array", w.index
