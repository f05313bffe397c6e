-- Chunk references that cannot be served from their source: one row per offending chunk.
-- A reference is bad when its source_id is not in `sources`, its offset or length is
-- negative, or it ends past the source's recorded size. Inline chunks (data set) are skipped.
-- Returns: array, index, source_id, uri, offset, length, size, problem. No parameters.
SELECT c."array", c.index, c.source_id, s.uri, c."offset", c.length, s.size,
       CASE
           WHEN c.source_id IS NULL THEN 'no source and no inline data'
           WHEN s.source_id IS NULL THEN 'source_id not in sources'
           WHEN c."offset" IS NULL OR c.length IS NULL THEN 'offset or length missing'
           WHEN c."offset" < 0 OR c.length < 0 THEN 'negative offset or length'
           ELSE 'ends past the end of the file'
       END AS problem
FROM chunks AS c
LEFT JOIN sources AS s ON s.source_id = c.source_id
WHERE c.data IS NULL
  AND (c.source_id IS NULL
       OR s.source_id IS NULL
       OR c."offset" IS NULL OR c.length IS NULL
       OR c."offset" < 0 OR c.length < 0
       OR (s.size IS NOT NULL AND c."offset" + c.length > s.size))
ORDER BY c."array", c.index
