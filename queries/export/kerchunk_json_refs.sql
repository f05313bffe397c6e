-- One row per chunk of an exported array, in key order: `frag`, the chunk's kerchunk JSON
-- reference entry as text `,<newline>"key":value`, where value is [url, offset, length] for a
-- reference, the data as a JSON string when it is ASCII text, else "base64:<data>"; null for a
-- chunk with neither data nor a resolvable reference (the writer then reports it).
-- Parameters: $v3 (BOOLEAN): Zarr v3 chunk keys (`air/c/0/1`, `air/c` for 0-d) instead of
-- Zarr v2 keys (`air/0.1`, `air/0` for 0-d).
-- Needs the table `ref_urls` (source_id, url) registered beside the manifest tables.
-- JSON escaping is done once per array and per source, not per chunk: the escaped array
-- path without its closing quote is the key prefix, chunk indices need no escaping.
WITH arr AS (
    SELECT "array", (to_json("array")::VARCHAR)[:-2] || CASE WHEN $v3 THEN '/c' ELSE '/' END AS jkey
    FROM arrays
),
src AS (
    SELECT source_id, '[' || to_json(url)::VARCHAR || ',' AS jurl FROM ref_urls
)
SELECT
    CASE WHEN c.data IS NULL AND (s.jurl IS NULL OR c."offset" IS NULL OR c.length IS NULL)
        THEN NULL ELSE concat(
        ',', chr(10), a.jkey,
        CASE
            WHEN len(c."index") = 0 THEN CASE WHEN $v3 THEN '' ELSE '0' END
            WHEN $v3 THEN '/' || array_to_string(c."index", '/')
            ELSE array_to_string(c."index", '.')
        END,
        '":',
        CASE
            WHEN c.data IS NULL THEN concat(s.jurl, c."offset", ',', c.length, ']')
            WHEN octet_length(c.data) = length(try(decode(c.data)))
                 AND NOT starts_with(try(decode(c.data)), 'base64:')
                THEN to_json(decode(c.data))::VARCHAR
            ELSE concat('"base64:', to_base64(c.data), '"')
        END
    ) END AS frag
FROM chunks AS c
JOIN arr AS a ON a."array" = c."array"
LEFT JOIN src AS s ON s.source_id = c.source_id
ORDER BY c."array", c."index"
