-- An index for the task list's `search` filter (see the PostgreSQL migration of the same name):
-- an FTS5 table with the trigram tokenizer over title and description, whose rowid is the task's
-- rowid. src/repo/tasks/list.rs asks it for the rows containing the pattern (3 characters or more;
-- shorter patterns have no trigram and are found by a scan of the owner's rows, as before) and
-- rechecks every candidate against the LIKE itself: the tokenizer folds case by Unicode, which
-- finds a superset of the ASCII-only folding of the search, never fewer rows.
--
-- External content (content='tasks'): the text is stored once, in tasks; the triggers below keep
-- the index in step with every insert, update and delete. The index refers to tasks by rowid.
-- SQLite's VACUUM keeps rowids (checked with SQLite 3.40 and 3.50), but a copy that renumbers
-- them (e.g. `.dump` and reload) must be followed by
--     INSERT INTO tasks_search(tasks_search) VALUES ('rebuild');
CREATE VIRTUAL TABLE tasks_search USING fts5(
    title, description, content = 'tasks', content_rowid = 'rowid', tokenize = 'trigram'
);

CREATE TRIGGER tasks_search_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO tasks_search (rowid, title, description)
        VALUES (new.rowid, new.title, new.description);
END;

CREATE TRIGGER tasks_search_delete AFTER DELETE ON tasks BEGIN
    INSERT INTO tasks_search (tasks_search, rowid, title, description)
        VALUES ('delete', old.rowid, old.title, old.description);
END;

CREATE TRIGGER tasks_search_update AFTER UPDATE OF title, description ON tasks
    WHEN old.title IS NOT new.title OR old.description IS NOT new.description
BEGIN
    INSERT INTO tasks_search (tasks_search, rowid, title, description)
        VALUES ('delete', old.rowid, old.title, old.description);
    INSERT INTO tasks_search (rowid, title, description)
        VALUES (new.rowid, new.title, new.description);
END;

-- Rows written before this migration.
INSERT INTO tasks_search (tasks_search) VALUES ('rebuild');
