-- Use of each source file: one row per source with the chunks and bytes referenced in it,
-- how many arrays read from it, and the share of the file's size those bytes are.
-- No parameters. Tables: sources, chunks.
WITH c AS (
    SELECT source_id, count(*) AS chunks, sum(length) AS referenced_bytes,
           count(DISTINCT "array") AS arrays
    FROM chunks WHERE data IS NULL GROUP BY source_id
)
SELECT s.source_id, s.uri, s.format, s.size, coalesce(c.chunks, 0) AS chunks,
       CAST(coalesce(c.referenced_bytes, 0) AS BIGINT) AS referenced_bytes,
       coalesce(c.arrays, 0) AS arrays,
       CASE WHEN s.size > 0 THEN coalesce(c.referenced_bytes, 0) / s.size END AS referenced_share
FROM sources s LEFT JOIN c USING (source_id)
ORDER BY referenced_bytes DESC, s.source_id
