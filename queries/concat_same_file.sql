-- Files given more than once to a concatenation: one row per URI referenced by more than
-- one piece, with the pieces' labels.
-- No parameters. Tables: piece_sources, piece_labels(piece, label).
SELECT s.uri, list(DISTINCT l.label ORDER BY l.label) AS pieces, count(DISTINCT s.piece) AS n
FROM piece_sources s JOIN piece_labels l USING (piece)
GROUP BY s.uri
HAVING count(DISTINCT s.piece) > 1
ORDER BY s.uri
