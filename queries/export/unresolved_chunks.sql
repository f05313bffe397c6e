-- Chunks of exported arrays that can be written neither as a reference nor as inline data
-- (no `data`, and a `source_id` missing from `sources` or a null offset/length): one row per
-- such chunk (`array`, `index`, `source_id`), at most $limit rows.
-- Parameters: $limit (BIGINT).
SELECT c."array", c."index", c.source_id
FROM chunks AS c
JOIN arrays AS a ON a."array" = c."array"
LEFT JOIN sources AS s ON s.source_id = c.source_id
WHERE c.data IS NULL AND (s.source_id IS NULL OR c."offset" IS NULL OR c.length IS NULL)
ORDER BY c."array", c."index"
LIMIT $limit
