-- One row per chunk of the array $array: its chunk `index`, the reference (`url`, `offset`,
-- `length`; url null for inline chunks) and inline `data`, for the kerchunk Parquet writer.
-- Parameters: $array (VARCHAR): the array path.
-- Needs the table `ref_urls` (source_id, url) registered beside the manifest tables.
SELECT
    c."index",
    CASE WHEN c.data IS NULL THEN u.url END AS url,
    CASE WHEN c.data IS NULL THEN c."offset" ELSE 0 END AS "offset",
    CASE WHEN c.data IS NULL THEN c.length ELSE 0 END AS length,
    c.data
FROM chunks AS c
LEFT JOIN ref_urls AS u ON u.source_id = c.source_id
WHERE c."array" = $array
