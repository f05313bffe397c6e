-- The chunks table after rechunking arrays along one dimension by byte arithmetic: one row
-- per new chunk of each rechunked array, plus every chunk of the other arrays unchanged.
-- Old chunks are cut at multiples of n along the dimension (a split: each piece is one byte
-- run, since chunks have extent 1 on every earlier dimension) and the pieces falling into
-- one new chunk are joined (a merge) when they follow each other in one file. Columns
-- beyond the chunks schema: rows (elements along the dimension the new chunk stores; fewer
-- than n needs the padding codec), n, and problem: why the new chunk cannot be one byte
-- range (NULL when it can).
-- Tables: chunks, grid, rechunk_arrays("array", d, n, row_bytes, extent). No parameters.
WITH old AS (
    SELECT c."array", c.index, c.source_id, c."offset", c.data,
           r.d, r.n, r.row_bytes, r.extent, g.start, g.length AS slot
    FROM chunks c
    JOIN rechunk_arrays r ON r."array" = c."array"
    JOIN grid g ON g."array" = c."array" AND g.dim = r.d AND g.chunk = c.index[r.d + 1]
),
cut AS (
    SELECT *, unnest(range(start // n, (start + slot - 1) // n + 1)) AS k FROM old
),
pieces AS (
    SELECT "array", source_id, d, n, extent, k,
           list_transform(index, lambda x, i: CAST(CASE WHEN i = d + 1 THEN k ELSE x END AS INTEGER))
               AS new_index,
           greatest(start, k * n) AS pos,
           greatest(start, k * n) - start AS skip,
           least(start + slot, (k + 1) * n) - greatest(start, k * n) AS keep,
           "offset", data, row_bytes
    FROM cut
),
placed AS (
    SELECT "array", source_id, n, extent, k, new_index, pos, keep,
           "offset" + skip * row_bytes AS p_off,
           keep * row_bytes AS p_len,
           CASE WHEN data IS NOT NULL
                THEN array_slice(data, skip * row_bytes + 1, (skip + keep) * row_bytes) END
               AS p_data
    FROM pieces
),
ordered AS (
    SELECT *,
           lag(p_off + p_len) OVER w AS prev_end,
           lag(source_id) OVER w AS prev_source,
           row_number() OVER w AS nth
    FROM placed
    WINDOW w AS (PARTITION BY "array", new_index ORDER BY pos)
),
flagged AS (
    SELECT *,
           nth > 1 AND (p_off IS DISTINCT FROM prev_end OR source_id IS DISTINCT FROM prev_source)
               AS is_break
    FROM ordered
),
grouped AS (
    SELECT "array", new_index AS index,
           any_value(n) AS n, any_value(extent) AS extent, any_value(k) AS k,
           count(*) AS n_pieces,
           min(source_id) AS source_id,
           min(p_off) AS "offset",
           sum(p_len) AS length,
           sum(keep) AS rows,
           any_value(p_data) AS one_data,
           count(*) FILTER (WHERE p_data IS NOT NULL) AS n_inline,
           count(*) FILTER (WHERE is_break) AS n_breaks,
           arg_min(p_off, nth) FILTER (WHERE is_break) AS break_at,
           arg_min(prev_end, nth) FILTER (WHERE is_break) AS break_after,
           arg_min(source_id <> prev_source, nth) FILTER (WHERE is_break) AS break_source
    FROM flagged
    GROUP BY "array", new_index
)
SELECT "array", index,
       CASE WHEN n_inline > 0 THEN NULL ELSE source_id END AS source_id,
       CASE WHEN n_inline > 0 THEN NULL ELSE "offset" END AS "offset",
       CAST(length AS BIGINT) AS length,
       CASE WHEN n_inline > 0 THEN one_data END AS data,
       CAST(rows AS BIGINT) AS rows,
       n,
       CASE
           WHEN n_inline > 0 AND n_pieces > 1
               THEN printf('%d inline chunks would have to be joined; only referenced bytes are merged', n_pieces)
           WHEN n_breaks > 0 AND break_source
               THEN printf('the pieces of new chunk %d along the dimension sit in different files', k)
           WHEN n_breaks > 0
               THEN printf('the byte ranges of new chunk %d along the dimension are not contiguous: '
                           || 'a piece starts at byte %d where the previous one ended at byte %d '
                           || '(other data lies between them)', k, break_at, break_after)
           WHEN rows <> least(n, extent - k * n)
               THEN printf('new chunk %d along the dimension would hold %d of its %d elements: '
                           || 'the others are missing chunks (fill value)', k, rows,
                           least(n, extent - k * n))
       END AS problem
FROM grouped
UNION ALL
SELECT c."array", c.index, c.source_id, c."offset", c.length, c.data,
       NULL AS rows, NULL AS n, NULL AS problem
FROM chunks c
WHERE c."array" NOT IN (SELECT "array" FROM rechunk_arrays)
ORDER BY 1, 2
