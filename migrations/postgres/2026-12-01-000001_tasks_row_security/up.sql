-- Row-level security on tasks: a second wall behind the repositories' owner filter (issue 13
-- item 6). This migration creates the policy; it is dormant until an operator enables row-level
-- security on the table (docs/row-security.sql: ENABLE and FORCE), because PostgreSQL refuses
-- `COPY FROM` into a table whose policies apply to the session, so enabling it for everyone
-- would slow every non-superuser's import to multi-row INSERTs, the owner's too under FORCE.
--
-- Once enabled, the policy restricts members of the role `taskstore_row_security` (created by
-- docs/row-security.sql) to the rows whose user_id is the transaction's `taskstore.user_id`
-- setting, which the layer sets in the same batch as BEGIN (`TxOptions::owner`); unset or empty
-- means no rows (fail closed). Every other role (the owner running migrations, a runtime role
-- not in the group) sees every row; superusers and BYPASSRLS roles are never subject to it.
-- The setting and the role lookup are scalar subqueries, so each runs once per statement (an
-- InitPlan), not once per row: per row the policy costs one uuid comparison.
CREATE POLICY tasks_owner_scope ON tasks
    USING (
        user_id = (SELECT NULLIF(current_setting('taskstore.user_id', true), '')::uuid)
        OR (SELECT NOT coalesce(pg_has_role(to_regrole('taskstore_row_security'), 'MEMBER'), false))
    )
    WITH CHECK (
        user_id = (SELECT NULLIF(current_setting('taskstore.user_id', true), '')::uuid)
        OR (SELECT NOT coalesce(pg_has_role(to_regrole('taskstore_row_security'), 'MEMBER'), false))
    );
