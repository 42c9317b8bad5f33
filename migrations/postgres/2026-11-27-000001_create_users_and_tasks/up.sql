-- Users and their tasks. Every rule the Rust layer validates is enforced here too, so that no
-- other writer can break it.
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL,
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

-- Titles sort bytewise ("C") so that title order and keyset cursors are identical on SQLite.
CREATE TABLE tasks (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        text        COLLATE "C" NOT NULL,
    description  text,
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

-- One index per sort order, each led by the owner so that a page never touches other users' rows.
CREATE INDEX tasks_user_created_idx  ON tasks (user_id, created_at, id);
CREATE INDEX tasks_user_updated_idx  ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_user_priority_idx ON tasks (user_id, priority, id);
CREATE INDEX tasks_user_title_idx    ON tasks (user_id, title, id);
