-- One refs entry per reference produced by a kerchunk `gen` generator (already expanded):
-- `key`, `value` (JSON text `[url, offset, length]`, or `[url]` without a byte range), `type`.
-- Parameters: none. Needs the table `gen_refs` (key, url, offset BIGINT, length BIGINT; offset
-- and length null for whole-file references).
SELECT
    key,
    CASE WHEN "offset" IS NULL THEN '[' || to_json(url) || ']'
         ELSE '[' || to_json(url) || ',' || "offset" || ',' || length || ']' END AS value,
    'ARRAY' AS type
FROM gen_refs
