-- Keep each vector inline in its row (STORAGE MAIN) rather than in the TOAST table, where
-- pgvector's default (EXTERNAL) puts any vector over ~2 kB (500+ dimensions). An exact search of
-- a session then reads one heap page per row instead of a heap page plus TOAST index and chunk
-- pages: about 5x faster (benchmarks/pgvector_search.py), which is what lets small and mid-sized
-- sessions be searched exactly. A vector too wide for a page still moves out of line as a last
-- resort. Rows written before this migration stay out of line until the table is rewritten
-- (VACUUM FULL arena_embeddings, at a quiet time).
-- From here on the runner requires pgvector >= 0.8.0 (iterative index scans).
ALTER TABLE arena_embeddings ALTER COLUMN embedding SET STORAGE MAIN;

-- HNSW graph built with ef_construction 128 (m stays 16). On clustered embeddings pgvector's
-- default 64 leaves clusters the search cannot reach from the entry point (recall 0 for some
-- queries); 128 fixes most of it for twice the build time and ~30 % fewer inserts per second,
-- while m 24 or 32 halves the live insert rate again for little more recall
-- (benchmarks/results/pgvector_build_curve.md). Rebuilt here only while the table is empty: a
-- filled table keeps its index rather than block start-up for a rebuild; rebuild it by hand
-- (CREATE INDEX CONCURRENTLY with these options, then drop the old one) when convenient.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM arena_embeddings) THEN
        DROP INDEX IF EXISTS arena_embeddings_embedding_hnsw;
        CREATE INDEX arena_embeddings_embedding_hnsw ON arena_embeddings
            USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 128);
    END IF;
END
$$;
