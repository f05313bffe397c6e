-- One row per chunk of an exported array, in key order: `frag`, the chunk's kerchunk JSON
-- reference entry as text `,<newline>"key":value`, where value is [url, offset, length] for a
-- reference, the data as a JSON string when it is ASCII text, else "base64:<data>".
-- Parameters: $v3 (BOOLEAN): Zarr v3 chunk keys (`air/c/0/1`, `air/c` for 0-d) instead of
-- Zarr v2 keys (`air/0.1`, `air/0` for 0-d).
-- Needs the table `ref_urls` (source_id, url) registered beside the manifest tables.
WITH keyed AS (
    SELECT
        CASE
            WHEN $v3 THEN c."array" || '/c'
                || CASE WHEN len(c."index") = 0 THEN '' ELSE '/' || array_to_string(c."index", '/') END
            ELSE c."array" || '/'
                || CASE WHEN len(c."index") = 0 THEN '0' ELSE array_to_string(c."index", '.') END
        END AS key,
        c."array",
        c."index",
        c."offset",
        c.length,
        c.data,
        u.url,
        try(decode(c.data)) AS txt
    FROM chunks AS c
    JOIN arrays AS a ON a."array" = c."array"
    LEFT JOIN ref_urls AS u ON u.source_id = c.source_id
)
SELECT
    ',' || chr(10) || to_json(key) || ':' || CASE
        WHEN data IS NULL THEN '[' || to_json(url) || ',' || "offset" || ',' || length || ']'
        WHEN txt IS NOT NULL AND octet_length(data) = length(txt) AND NOT starts_with(txt, 'base64:')
            THEN to_json(txt)::VARCHAR
        ELSE '"base64:' || to_base64(data) || '"'
    END AS frag
FROM keyed
ORDER BY "array", "index"
