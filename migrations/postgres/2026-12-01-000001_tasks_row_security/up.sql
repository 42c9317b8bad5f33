-- Row-level security on tasks: a second wall behind the repositories' owner filter (issue 13
-- item 6). Opt-in per role: the policy restricts members of the role `taskstore_row_security`
-- (created by the operator, docs/row-security.sql) to the rows whose user_id is the
-- transaction's `taskstore.user_id` setting, which the layer sets in the same round trip as
-- BEGIN (`TxOptions::owner`). Unset or empty means no rows (fail closed). Every other role (the
-- owner running migrations, a single-role deployment, a runtime role not in the group) sees
-- every row, as before; superusers and BYPASSRLS roles are never subject to policies.
-- The setting and the role lookup are scalar subqueries, so each runs once per statement (an
-- InitPlan), not once per row: per row the policy costs one uuid comparison.
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tasks_owner_scope ON tasks
    USING (
        user_id = (SELECT NULLIF(current_setting('taskstore.user_id', true), '')::uuid)
        OR (SELECT NOT coalesce(pg_has_role(to_regrole('taskstore_row_security'), 'MEMBER'), false))
    )
    WITH CHECK (
        user_id = (SELECT NULLIF(current_setting('taskstore.user_id', true), '')::uuid)
        OR (SELECT NOT coalesce(pg_has_role(to_regrole('taskstore_row_security'), 'MEMBER'), false))
    );
