-- One row describing a kerchunk JSON reference file's top level: `ok` (valid JSON), `t` (its
-- JSON type), `r` (the type of `refs`), `v` (`version` as text), `tpl`, `gen`, `extras` (the
-- `templates`, `gen` and `vzsql` members as JSON text, NULL when absent).
-- Parameters: $d (VARCHAR): the reference file's text.
SELECT
    json_valid($d) AS ok,
    json_type($d) AS t,
    json_type($d, '$.refs') AS r,
    json_extract($d, '$.version')::VARCHAR AS v,
    json_extract($d, '$.templates')::VARCHAR AS tpl,
    json_extract($d, '$.gen')::VARCHAR AS gen,
    json_extract($d, '$.vzsql')::VARCHAR AS extras
