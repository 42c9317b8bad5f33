-- Users and their tasks. Every rule the Rust layer validates is enforced here too, so that no
-- other writer can break it.
--
-- Text that is compared, searched or sorted is COLLATE "C" so that PostgreSQL behaves exactly
-- like SQLite: bytewise order and equality, and lower() that folds ASCII letters only (under the
-- database's default collation lower() would also fold non-ASCII letters, and a search or an
-- email rule would then match differently on the two backends).
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        COLLATE "C" NOT NULL,
    password_hash text        NOT NULL,
    first_name    text,
    last_name     text,
    is_active     boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_check CHECK (
        char_length(email) BETWEEN 3 AND 254 AND email = lower(email) AND position('@' IN email) > 1
    ),
    CONSTRAINT users_password_hash_check CHECK (char_length(password_hash) BETWEEN 1 AND 1024),
    CONSTRAINT users_first_name_check CHECK (char_length(first_name) <= 100),
    CONSTRAINT users_last_name_check CHECK (char_length(last_name) <= 100)
);

CREATE TABLE tasks (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        text        COLLATE "C" NOT NULL,
    description  text        COLLATE "C",
    completed    boolean     NOT NULL DEFAULT false,
    priority     smallint    NOT NULL DEFAULT 3,
    version      integer     NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    completed_at timestamptz,
    CONSTRAINT tasks_title_check CHECK (char_length(title) BETWEEN 1 AND 255 AND title = btrim(title)),
    CONSTRAINT tasks_description_check CHECK (char_length(description) <= 1000),
    CONSTRAINT tasks_priority_check CHECK (priority BETWEEN 1 AND 5),
    CONSTRAINT tasks_version_check CHECK (version >= 1),
    CONSTRAINT tasks_completed_at_check CHECK ((completed_at IS NOT NULL) = completed)
);

-- One index per sort order, each led by the owner so that a page never touches other users' rows,
-- and ending in id, the tie-break, so that a keyset page starts exactly at its cursor.
-- The user list pages over the primary key. A user's tasks are found through any of these
-- (the foreign key's ON DELETE CASCADE uses them too).
CREATE INDEX tasks_user_created_idx  ON tasks (user_id, created_at, id);
CREATE INDEX tasks_user_updated_idx  ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_user_priority_idx ON tasks (user_id, priority, id);
CREATE INDEX tasks_user_title_idx    ON tasks (user_id, title, id);
