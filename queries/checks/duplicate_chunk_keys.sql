-- Chunk keys present more than once: one row per (array, index) with several chunk rows.
-- No parameters. Tables: chunks.
SELECT 'duplicate_chunk_key' AS kind, 'error' AS severity, c."array", c.index AS chunk,
       CAST(NULL AS VARCHAR) AS source,
       count(*) || ' chunk rows share this key' AS detail
FROM chunks c
GROUP BY c."array", c.index
HAVING count(*) > 1
ORDER BY c."array", c.index
