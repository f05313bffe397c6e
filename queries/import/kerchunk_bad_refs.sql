-- Imported references that cannot be right: a negative offset or length, a byte range past
-- the end of a file whose size is known, or a whole-file reference to a file of unknown size.
-- One row per such chunk (`array`, `index`, `uri`, `offset`, `length`, `size`, `problem`), at
-- most $limit rows. Parameters: $limit (BIGINT). Needs tables `chunks` and `sources`.
SELECT c."array", c."index", s.uri, c."offset", c.length, s.size,
    CASE
        WHEN c.length IS NULL THEN 'size of the referenced whole file is unknown'
        WHEN c."offset" < 0 OR c.length < 0 THEN 'negative offset or length'
        ELSE 'byte range ends past the end of the file'
    END AS problem
FROM chunks AS c
JOIN sources AS s ON s.source_id = c.source_id
WHERE c.data IS NULL
  AND (c.length IS NULL OR c."offset" < 0 OR c.length < 0
       OR (s.size IS NOT NULL AND c."offset" + c.length > s.size))
ORDER BY c."array", c."index"
LIMIT $limit
