-- Users and their tasks. UUIDs are 16-byte BLOBs, timestamps BIGINT microseconds since the Unix
-- epoch (see src/sql_types.rs); both sort like PostgreSQL's uuid and timestamptz.
CREATE TABLE users (
    id            BLOB    PRIMARY KEY NOT NULL CHECK (typeof(id) = 'blob' AND length(id) = 16),
    email         TEXT    NOT NULL CONSTRAINT users_email_key UNIQUE
                          CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email) AND instr(email, '@') > 1),
    password_hash TEXT    NOT NULL CHECK (length(password_hash) BETWEEN 1 AND 1024),
    first_name    TEXT    CHECK (length(first_name) <= 100),
    last_name     TEXT    CHECK (length(last_name) <= 100),
    is_active     BOOLEAN NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at    BIGINT  NOT NULL CHECK (typeof(created_at) = 'integer'),
    updated_at    BIGINT  NOT NULL CHECK (typeof(updated_at) = 'integer')
);

CREATE TABLE tasks (
    id           BLOB     PRIMARY KEY NOT NULL CHECK (typeof(id) = 'blob' AND length(id) = 16),
    user_id      BLOB     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        TEXT     NOT NULL CHECK (length(title) BETWEEN 1 AND 255 AND title = trim(title)),
    description  TEXT     CHECK (length(description) <= 1000),
    completed    BOOLEAN  NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
    priority     SMALLINT NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    version      INTEGER  NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   BIGINT   NOT NULL CHECK (typeof(created_at) = 'integer'),
    updated_at   BIGINT   NOT NULL CHECK (typeof(updated_at) = 'integer'),
    completed_at BIGINT   CHECK (completed_at IS NULL OR typeof(completed_at) = 'integer'),
    CHECK ((completed_at IS NOT NULL) = completed)
);

CREATE INDEX tasks_user_created_idx  ON tasks (user_id, created_at, id);
CREATE INDEX tasks_user_updated_idx  ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_user_priority_idx ON tasks (user_id, priority, id);
CREATE INDEX tasks_user_title_idx    ON tasks (user_id, title, id);
