-- One row per imported chunk, in the manifest's `chunks` schema order (`array`, `index`,
-- `source_id`, `offset`, `length`, `data`), sorted by array and index. Whole-file references
-- get offset 0 and the file's size; inline data its byte length; `data` starting with
-- `base64:` is decoded as fsspec does.
-- Parameters: none. Needs the tables `refs` (array, index, url, offset, length, whole_file,
-- data) and `url_map` (url, source_id, size).
SELECT
    r."array",
    r."index"::INTEGER[] AS "index",
    CASE WHEN r.data IS NULL THEN m.source_id END::INTEGER AS source_id,
    CASE WHEN r.data IS NOT NULL THEN NULL WHEN r.whole_file THEN 0 ELSE r."offset" END::BIGINT
        AS "offset",
    CASE WHEN r.data IS NOT NULL THEN octet_length(r.data) WHEN r.whole_file THEN m.size
         ELSE r.length END::BIGINT AS length,
    r.data
FROM refs AS r
LEFT JOIN url_map AS m ON m.url = r.url
ORDER BY r."array", r."index"
