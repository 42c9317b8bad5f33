-- The extensions stay: other objects may use them, and they may have been there before.
SELECT 1;
