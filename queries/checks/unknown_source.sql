-- Chunks that reference a source_id with no row in sources, or have neither a reference
-- nor inline data: one row per such chunk.
-- No parameters. Tables: sources, chunks.
SELECT 'unknown_source' AS kind, 'error' AS severity, c."array", c.index AS chunk,
       CAST(NULL AS VARCHAR) AS source,
       CASE WHEN c.source_id IS NULL THEN 'chunk has neither a source reference nor inline data'
            ELSE 'chunk refers to source_id ' || c.source_id || ', which is not in sources' END
           AS detail
FROM chunks c
WHERE c.data IS NULL
  AND (c.source_id IS NULL OR c.source_id NOT IN (SELECT source_id FROM sources))
ORDER BY c."array", c.index
