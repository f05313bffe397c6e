-- Sources changed since they were scanned: one row per source whose size, mtime or etag
-- (where recorded) differs from what a stat finds now.
-- No parameters. Tables: sources, source_stats(source_id, found, size, mtime, etag, error).
SELECT 'source_changed' AS kind, 'error' AS severity, CAST(NULL AS VARCHAR) AS "array",
       CAST(NULL AS INTEGER[]) AS chunk, s.uri AS source,
       'source changed since scan: ' || concat_ws(', ',
           CASE WHEN s.size IS NOT NULL AND s.size IS DISTINCT FROM t.size
                THEN 'size ' || s.size || ' -> ' || coalesce(CAST(t.size AS VARCHAR), '?') END,
           CASE WHEN s.mtime IS NOT NULL AND t.mtime IS NOT NULL AND s.mtime <> t.mtime
                THEN 'mtime ' || s.mtime || ' -> ' || t.mtime END,
           CASE WHEN s.etag IS NOT NULL AND t.etag IS NOT NULL AND s.etag <> t.etag
                THEN 'etag ' || s.etag || ' -> ' || t.etag END) AS detail
FROM sources s JOIN source_stats t USING (source_id)
WHERE t.found AND (
      (s.size IS NOT NULL AND s.size IS DISTINCT FROM t.size)
   OR (s.mtime IS NOT NULL AND t.mtime IS NOT NULL AND s.mtime <> t.mtime)
   OR (s.etag IS NOT NULL AND t.etag IS NOT NULL AND s.etag <> t.etag))
ORDER BY s.source_id
