-- The extensions stay: other objects may use them, and they may have been there before.
DROP INDEX tasks_user_search_idx;
