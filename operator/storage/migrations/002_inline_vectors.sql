-- Keep each vector inline in its row (STORAGE MAIN) rather than in the TOAST table, where
-- pgvector's default (EXTERNAL) puts any vector over ~2 kB (500+ dimensions). An exact search of
-- a session then reads one heap page per row instead of a heap page plus TOAST index and chunk
-- pages: about 5x faster (benchmarks/pgvector_search.py), which is what lets small and mid-sized
-- sessions be searched exactly. A vector too wide for a page still moves out of line as a last
-- resort. Rows written before this migration stay out of line until the table is rewritten
-- (VACUUM FULL arena_embeddings, at a quiet time).
-- From here on the runner requires pgvector >= 0.8.0 (iterative index scans).
ALTER TABLE arena_embeddings ALTER COLUMN embedding SET STORAGE MAIN;
