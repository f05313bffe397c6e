-- One row per chunk of the array $array: its chunk `index`, the reference (`url_row`: the
-- row of `ref_urls` holding its URL, null for inline chunks; `offset`, `length`) and inline
-- `data`, for the kerchunk Parquet writer. URLs are looked up per record file by the
-- writer, so an array of 25M chunks does not carry 25M URL strings.
-- Parameters: $array (VARCHAR): the array path.
-- Needs the table `ref_urls` (source_id, url, url_row) registered beside the manifest tables.
SELECT
    c."index",
    CASE WHEN c.data IS NULL THEN u.url_row END AS url_row,
    CASE WHEN c.data IS NULL THEN c."offset" ELSE 0 END AS "offset",
    CASE WHEN c.data IS NULL THEN c.length ELSE 0 END AS length,
    c.data
FROM chunks AS c
LEFT JOIN ref_urls AS u ON u.source_id = c.source_id
WHERE c."array" = $array
