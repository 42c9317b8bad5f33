-- The rows both stacks of bench/sqlmodel/run.sh read: 100 users x 1 000 tasks, a third of them
-- completed, creation times one second apart, titles and (every other task) descriptions of
-- realistic length. Server-side, so that seeding is quick and favours neither stack.
INSERT INTO users (id, email, password_hash, created_at, updated_at)
SELECT gen_random_uuid(), 'seed' || u || '@bench.example', 'x', now(), now()
FROM generate_series(0, 99) AS u;

INSERT INTO tasks (id, user_id, title, description, completed, priority, version,
                   created_at, updated_at, completed_at)
SELECT gen_random_uuid(), users.id,
       'Task ' || i || ': review the quarterly report section ' || i % 1000,
       CASE WHEN i % 2 = 0 THEN 'Details for task ' || i || ': check the figures.' END,
       i % 3 = 0, 1 + i % 5, 1,
       now() - make_interval(secs => i), now() - make_interval(secs => i),
       CASE WHEN i % 3 = 0 THEN now() - make_interval(secs => i) END
FROM users CROSS JOIN generate_series(0, 999) AS i;

ANALYZE;
