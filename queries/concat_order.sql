-- The order of pieces along a concatenated dimension from their coordinate values: one row
-- per piece, sorted by its first value, with its range, the step inside it, and what is
-- wrong: duplicated values inside the piece, values not increasing, an overlap with the
-- previous piece (same or earlier values), or a gap before it (a jump of more than 1.5
-- typical steps, the typical step being the median step inside or between pieces).
-- No parameters. Tables: coord_values(piece, i, value DOUBLE), piece_labels(piece, label).
WITH steps AS (
    SELECT piece, i, value, value - lag(value) OVER (PARTITION BY piece ORDER BY i) AS step
    FROM coord_values
),
per_piece AS (
    SELECT piece, min(value) AS lo, max(value) AS hi, count(*) AS n,
           count(*) - count(DISTINCT value) AS duplicates,
           coalesce(bool_or(step <= 0), false) AS not_increasing,
           median(step) AS inner_step
    FROM steps GROUP BY piece
),
ordered AS (
    SELECT p.*, l.label,
           row_number() OVER (ORDER BY lo, piece) - 1 AS rank,
           lag(hi) OVER (ORDER BY lo, piece) AS prev_hi,
           lag(l.label) OVER (ORDER BY lo, piece) AS prev_label
    FROM per_piece p JOIN piece_labels l USING (piece)
),
typical AS (
    SELECT coalesce(
        (SELECT median(step) FROM steps WHERE step > 0),
        (SELECT median(lo - prev_hi) FROM ordered WHERE lo > prev_hi)
    ) AS step
)
SELECT o.piece, o.rank, o.label, o.lo, o.hi, o.n, o.duplicates, o.not_increasing,
       o.prev_label,
       coalesce(o.lo <= o.prev_hi, false) AS overlaps_previous,
       coalesce(o.lo - o.prev_hi > 1.5 * t.step, false) AS gap_before,
       o.lo - o.prev_hi AS jump, t.step AS typical_step
FROM ordered o CROSS JOIN typical t
ORDER BY o.rank
