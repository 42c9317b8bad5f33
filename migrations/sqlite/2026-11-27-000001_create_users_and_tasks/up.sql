-- Users and their tasks. UUIDs are 16-byte BLOBs, timestamps BIGINT microseconds since the Unix
-- epoch (see src/sql_types.rs); both sort like PostgreSQL's uuid and timestamptz. Text compares
-- bytewise (BINARY), like the COLLATE "C" columns on PostgreSQL.
--
-- The CHECKs carry the same names as on PostgreSQL, so a refused write names the same rule on
-- both backends. Text columns also refuse NUL: PostgreSQL cannot store it at all, and SQLite's
-- length() stops counting at the first NUL, which would let over-long values through.
CREATE TABLE users (
    id            BLOB    PRIMARY KEY NOT NULL
                          CONSTRAINT users_id_check CHECK (typeof(id) = 'blob' AND length(id) = 16),
    email         TEXT    NOT NULL CONSTRAINT users_email_key UNIQUE
                          CONSTRAINT users_email_check CHECK (
                              length(email) BETWEEN 3 AND 254 AND email = lower(email)
                              AND instr(email, '@') > 1 AND instr(email, char(0)) = 0
                          ),
    password_hash TEXT    NOT NULL
                          CONSTRAINT users_password_hash_check CHECK (
                              length(password_hash) BETWEEN 1 AND 1024 AND instr(password_hash, char(0)) = 0
                          ),
    first_name    TEXT    CONSTRAINT users_first_name_check CHECK (
                              length(first_name) <= 100 AND instr(first_name, char(0)) = 0
                          ),
    last_name     TEXT    CONSTRAINT users_last_name_check CHECK (
                              length(last_name) <= 100 AND instr(last_name, char(0)) = 0
                          ),
    is_active     BOOLEAN NOT NULL DEFAULT 1 CONSTRAINT users_is_active_check CHECK (is_active IN (0, 1)),
    created_at    BIGINT  NOT NULL CONSTRAINT users_created_at_check CHECK (typeof(created_at) = 'integer'),
    updated_at    BIGINT  NOT NULL CONSTRAINT users_updated_at_check CHECK (typeof(updated_at) = 'integer')
);

CREATE TABLE tasks (
    id           BLOB     PRIMARY KEY NOT NULL
                          CONSTRAINT tasks_id_check CHECK (typeof(id) = 'blob' AND length(id) = 16),
    user_id      BLOB     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        TEXT     NOT NULL CONSTRAINT tasks_title_check CHECK (
                              length(title) BETWEEN 1 AND 255 AND title = trim(title) AND instr(title, char(0)) = 0
                          ),
    description  TEXT     CONSTRAINT tasks_description_check CHECK (
                              length(description) <= 1000 AND instr(description, char(0)) = 0
                          ),
    completed    BOOLEAN  NOT NULL DEFAULT 0 CONSTRAINT tasks_completed_check CHECK (completed IN (0, 1)),
    priority     SMALLINT NOT NULL DEFAULT 3 CONSTRAINT tasks_priority_check CHECK (priority BETWEEN 1 AND 5),
    version      INTEGER  NOT NULL DEFAULT 1 CONSTRAINT tasks_version_check CHECK (version >= 1),
    created_at   BIGINT   NOT NULL CONSTRAINT tasks_created_at_check CHECK (typeof(created_at) = 'integer'),
    updated_at   BIGINT   NOT NULL CONSTRAINT tasks_updated_at_check CHECK (typeof(updated_at) = 'integer'),
    completed_at BIGINT   CONSTRAINT tasks_completed_at_type_check CHECK (
                              completed_at IS NULL OR typeof(completed_at) = 'integer'
                          ),
    CONSTRAINT tasks_completed_at_check CHECK ((completed_at IS NOT NULL) = completed)
);

-- The same indexes as on PostgreSQL (see there).
CREATE INDEX tasks_user_created_idx  ON tasks (user_id, created_at, id);
CREATE INDEX tasks_user_updated_idx  ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_user_priority_idx ON tasks (user_id, priority, id);
CREATE INDEX tasks_user_title_idx    ON tasks (user_id, title, id);
