-- Chunk keys present more than once: one row per (array, index) with several chunk rows.
-- Keys are hashed and sorted once (a window lag over fixed-width integers, cheaper than a
-- hash aggregate over every list); only rows whose hash repeats are grouped exactly, so a
-- hash collision costs time, never a wrong answer.
-- No parameters. Tables: chunks.
WITH hashed AS (
    SELECT "array", hash("array", index) AS h FROM chunks
),
repeated AS (
    SELECT DISTINCT h
    FROM (SELECT h, lag(h) OVER (ORDER BY h) AS prev FROM hashed)
    WHERE prev = h
)
SELECT 'duplicate_chunk_key' AS kind, 'error' AS severity, c."array", c.index AS chunk,
       CAST(NULL AS VARCHAR) AS source,
       count(*) || ' chunk rows share this key' AS detail
FROM chunks c SEMI JOIN repeated r ON r.h = hash(c."array", c.index)
GROUP BY c."array", c.index
HAVING count(*) > 1
ORDER BY c."array", c.index
