-- Chunks whose byte range ends past the end of their file (current size when the source
-- was stat'ed, else the size recorded at scan): one row per such chunk.
-- No parameters. Tables: sources, chunks, source_stats(source_id, found, size, ...).
SELECT 'range_past_eof' AS kind, 'error' AS severity, c."array", c.index AS chunk,
       s.uri AS source,
       'byte range ' || c."offset" || '+' || c.length || ' ends at ' || (c."offset" + c.length)
           || ', past the end of the file (' || coalesce(t.size, s.size) || ' bytes)' AS detail
FROM chunks c
JOIN sources s ON s.source_id = c.source_id
LEFT JOIN source_stats t ON t.source_id = c.source_id AND t.found
WHERE c.data IS NULL AND coalesce(t.size, s.size) IS NOT NULL
  AND c."offset" + c.length > coalesce(t.size, s.size)
ORDER BY c."array", c.index
