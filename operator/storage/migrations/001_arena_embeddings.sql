-- Arena memory: embeddings of what arena sessions produce (battle rounds, risk assessments,
-- results), searched by cosine similarity within a session and across past sessions.
-- {{dimensions}} is replaced with HEADY_EMBEDDING_DIMENSIONS before this runs; the runner
-- refuses to start if an existing table was created with a different size.
-- Portable across PostgreSQL 16-18 with pgvector >= 0.5 (HNSW).

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS arena_embeddings (
    id           bigserial PRIMARY KEY,
    session      text NOT NULL,
    repo_name    text NOT NULL,
    entity_type  text NOT NULL,
    entity_id    text NOT NULL,
    -- sha256 of content: the same text stored twice for one entity is one row.
    content_hash text NOT NULL,
    embedding    vector({{dimensions}}) NOT NULL,
    battle_depth integer NOT NULL DEFAULT 0 CHECK (battle_depth BETWEEN 0 AND 7),
    risk_score   double precision NOT NULL DEFAULT 0 CHECK (risk_score BETWEEN 0 AND 1),
    content      text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Writes replayed after an outage land here instead of twice. Its index also serves the
    -- per-session lookups, since session is the leading column.
    CONSTRAINT arena_embeddings_identity UNIQUE (session, entity_type, entity_id, content_hash)
);

-- Default HNSW parameters (m 16, ef_construction 64); see benchmarks/pgvector_search.py.
CREATE INDEX IF NOT EXISTS arena_embeddings_embedding_hnsw
    ON arena_embeddings USING hnsw (embedding vector_cosine_ops);
