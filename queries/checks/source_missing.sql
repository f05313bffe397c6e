-- Sources that no longer exist (or cannot be reached): one row per such source.
-- No parameters. Tables: sources, source_stats(source_id, found, size, mtime, etag, error)
-- (stat done in Python per source).
SELECT 'source_missing' AS kind, 'error' AS severity, CAST(NULL AS VARCHAR) AS "array",
       CAST(NULL AS INTEGER[]) AS chunk, s.uri AS source,
       'source file is missing: ' || coalesce(t.error, 'not found') AS detail
FROM sources s JOIN source_stats t USING (source_id)
WHERE NOT t.found
ORDER BY s.source_id
