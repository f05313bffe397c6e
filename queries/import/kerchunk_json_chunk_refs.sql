-- One row per chunk entry of a kerchunk JSON reference set whose key names a known array:
-- `array`, `index` (INTEGER[]), `key`, `url` (null for inline data), `offset`, `length`,
-- `whole_file` (a one-element [url] reference), `data` (inline bytes, `base64:` decoded) and
-- `problem` (why the entry is malformed, else null).
-- Parameters: none. Needs the tables `entries` (key, value, type: see kerchunk_json_entries)
-- and `array_keys` (array, v3 BOOLEAN: keys `a/c/0/1` rather than `a/0.1`, ndim INTEGER).
WITH parsed AS (
    SELECT
        e.key,
        e.value,
        e.type,
        regexp_extract(e.key, '^(.+)/([0-9]+(\.[0-9]+)*)$', 1) AS p2,
        regexp_extract(e.key, '^(.+)/([0-9]+(\.[0-9]+)*)$', 2) AS i2,
        regexp_extract(e.key, '^(.+)/c((/[0-9]+)*)$', 1) AS p3,
        regexp_extract(e.key, '^(.+)/c((/[0-9]+)*)$', 2) AS i3
    FROM entries AS e
),
matched AS (
    SELECT
        a."array", a.ndim, p.key, p.value, p.type,
        CASE WHEN a.ndim = 0 AND p.i2 = '0' THEN []::INTEGER[]
             ELSE list_transform(string_split(p.i2, '.'), lambda x: TRY_CAST(x AS INTEGER)) END AS "index"
    FROM parsed AS p JOIN array_keys AS a ON NOT a.v3 AND a."array" = p.p2
    UNION ALL
    SELECT
        a."array", a.ndim, p.key, p.value, p.type,
        CASE WHEN p.i3 = '' THEN []::INTEGER[]
             ELSE list_transform(string_split(substr(p.i3, 2), '/'), lambda x: TRY_CAST(x AS INTEGER)) END
    FROM parsed AS p JOIN array_keys AS a ON a.v3 AND a."array" = p.p3
),
valued AS (
    SELECT
        m.*,
        CASE WHEN m.type = 'ARRAY' THEN json_array_length(m.value) END AS n,
        CASE WHEN m.type = 'VARCHAR' THEN json_extract_string(m.value, '$') END AS text
    FROM matched AS m
)
SELECT
    "array",
    "index",
    key,
    CASE WHEN type = 'ARRAY' THEN json_extract_string(value, '$[0]') END AS url,
    CASE WHEN n = 3 THEN TRY_CAST(json_extract(value, '$[1]') AS BIGINT) END AS "offset",
    CASE WHEN n = 3 THEN TRY_CAST(json_extract(value, '$[2]') AS BIGINT) END AS length,
    coalesce(n = 1, false) AS whole_file,
    CASE WHEN starts_with(text, 'base64:') THEN TRY(from_base64(substr(text, 8)))
         ELSE encode(text) END AS data,
    CASE
        WHEN len("index") <> ndim OR list_contains("index", NULL)
            THEN 'chunk key does not match the array''s ' || ndim || ' dimensions'
        WHEN type = 'VARCHAR' AND starts_with(text, 'base64:') AND TRY(from_base64(substr(text, 8))) IS NULL
            THEN 'invalid base64 inline data'
        WHEN type = 'VARCHAR' THEN NULL
        WHEN type <> 'ARRAY' THEN 'reference is neither a string nor a list'
        WHEN n NOT IN (1, 3) THEN 'reference list must be [url] or [url, offset, length]'
        WHEN json_type(value, '$[0]') <> 'VARCHAR' THEN 'reference url is not a string'
        WHEN n = 3 AND (json_type(value, '$[1]') NOT IN ('UBIGINT', 'BIGINT')
                        OR json_type(value, '$[2]') NOT IN ('UBIGINT', 'BIGINT'))
            THEN 'reference offset and length must be integers'
    END AS problem
FROM valued
