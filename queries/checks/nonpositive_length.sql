-- Chunks with a zero, negative or missing length, or a negative offset: one row per chunk.
-- No parameters. Tables: chunks.
SELECT 'nonpositive_length' AS kind, 'error' AS severity, c."array", c.index AS chunk,
       CAST(NULL AS VARCHAR) AS source,
       CASE WHEN c."offset" < 0 THEN 'negative offset ' || c."offset"
            ELSE 'chunk length is ' || coalesce(CAST(c.length AS VARCHAR), 'missing') END AS detail
FROM chunks c
WHERE c.length IS NULL OR c.length <= 0 OR c."offset" < 0
ORDER BY c."array", c.index
