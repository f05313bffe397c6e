-- Entries of a kerchunk reference set that look like chunk keys (`x/0.1`, `x/c/0/1`, `x/0`) but
-- belong to no array with metadata: one row per such entry (`key`), at most $limit rows.
-- Parameters: $limit (BIGINT). Needs the tables `entries` and `array_keys`.
WITH parsed AS (
    SELECT
        key,
        regexp_matches(key, '^(.+)/[0-9]+(\.[0-9]+)*$') OR regexp_matches(key, '^(.+)/c(/[0-9]+)*$')
            AS chunk_like,
        regexp_extract(key, '^(.+)/[0-9]+(\.[0-9]+)*$', 1) AS p2,
        regexp_extract(key, '^(.+)/c(/[0-9]+)*$', 1) AS p3
    FROM entries
)
SELECT key
FROM parsed
WHERE chunk_like
  AND p2 NOT IN (SELECT "array" FROM array_keys WHERE NOT v3)
  AND p3 NOT IN (SELECT "array" FROM array_keys WHERE v3)
ORDER BY key
LIMIT $limit
