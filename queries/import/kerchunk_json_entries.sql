-- One row per entry of the refs object of a kerchunk JSON reference set: `key`, `value` (the
-- entry's JSON text) and `type` (its JSON type: VARCHAR, ARRAY, OBJECT, ...).
-- Parameters: $doc (VARCHAR): the reference file's text; $path (VARCHAR): JSON path of the
-- refs object ('$' for spec version 0, '$.refs' for version 1).
SELECT key, value::VARCHAR AS value, type
FROM json_each($doc, $path)
