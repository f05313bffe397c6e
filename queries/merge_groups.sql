-- The groups table of a merge: one row per group path, the first piece's attributes.
-- No parameters. Tables: piece_groups.
SELECT "group", attrs, attr_dtypes
FROM piece_groups
QUALIFY row_number() OVER (PARTITION BY "group" ORDER BY piece, pos) = 1
ORDER BY "group"
