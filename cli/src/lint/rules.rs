//! The rules of `taskstore migrate check`: each names an operation that takes a long ACCESS
//! EXCLUSIVE (or SHARE) lock on a table in use, rewrites it, or breaks the release still
//! running, with why and the safe pattern.
//!
//! Sources: PostgreSQL's documentation of `ALTER TABLE` (lock levels of each sub-command, "Notes"
//! on rewrites, `NOT VALID` and `USING INDEX`), `CREATE INDEX` ("Building Indexes
//! Concurrently"), `DROP INDEX`, `REINDEX`, `LOCK`, `TRUNCATE`, `VACUUM`, `CLUSTER`, and
//! "Explicit Locking" (the lock conflict table); the expand/contract pattern for renames.

/// One rule: its id (used in acknowledgements), why it is dangerous, the safe pattern.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub why: &'static str,
    pub safe: &'static str,
}

macro_rules! rules {
    ($($name:ident = $id:literal, $why:literal, $safe:literal;)*) => {
        $(pub const $name: Rule = Rule { id: $id, why: $why, safe: $safe };)*
        /// Every rule, in the order the README lists them.
        pub const ALL: &[Rule] = &[$($name),*];
    };
}

rules! {
    CREATE_INDEX = "create-index-not-concurrently",
        "CREATE INDEX takes a SHARE lock on an existing table: every INSERT, UPDATE and DELETE \
         waits until the whole index is built",
        "CREATE INDEX CONCURRENTLY in a migration of its own with run_in_transaction = false \
         in its metadata.toml (an interrupted build leaves an INVALID index, which the next \
         start drops and builds again)";
    VOLATILE_DEFAULT = "add-column-volatile-default",
        "ADD COLUMN with a volatile default (random(), gen_random_uuid(), clock_timestamp(), \
         nextval() / serial, a STORED generated column) rewrites the whole table under an \
         ACCESS EXCLUSIVE lock",
        "add the column without a default (or with a constant one), set the default with \
         ALTER COLUMN ... SET DEFAULT, and backfill existing rows in batches";
    ALTER_TYPE = "alter-column-type",
        "ALTER COLUMN ... TYPE rewrites the table and its indexes under an ACCESS EXCLUSIVE \
         lock (unless the types are binary-compatible)",
        "add a column of the new type, write both from the application, backfill in batches, \
         then switch reads and drop the old column in a later release";
    SET_NOT_NULL = "set-not-null",
        "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock, unless a validated \
         CHECK (column IS NOT NULL) constraint already proves it",
        "ADD CONSTRAINT c CHECK (column IS NOT NULL) NOT VALID; then VALIDATE CONSTRAINT c (a \
         SHARE UPDATE EXCLUSIVE lock: reads and writes go on); then SET NOT NULL (no scan) and \
         DROP CONSTRAINT c";
    CONSTRAINT_NOT_VALID = "constraint-without-not-valid",
        "adding a FOREIGN KEY or CHECK constraint to an existing table checks every row while \
         holding a lock that blocks writes (SHARE ROW EXCLUSIVE / ACCESS EXCLUSIVE)",
        "ADD CONSTRAINT ... NOT VALID (only new rows are checked), then VALIDATE CONSTRAINT in \
         a later statement or migration, which lets reads and writes go on";
    UNIQUE_CONSTRAINT = "add-unique-without-index",
        "ADD PRIMARY KEY / ADD UNIQUE builds its index while holding an ACCESS EXCLUSIVE lock: \
         no reads or writes until it is built",
        "CREATE UNIQUE INDEX CONCURRENTLY (a migration with run_in_transaction = false), then \
         ALTER TABLE ... ADD CONSTRAINT c UNIQUE USING INDEX (or PRIMARY KEY USING INDEX)";
    VACUUM_FULL = "vacuum-full",
        "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock",
        "plain VACUUM (no exclusive lock), or pg_repack run by an operator outside migrations";
    CLUSTER = "cluster",
        "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock",
        "do not cluster in a migration; pg_repack --order-by run by an operator, if at all";
    RENAME_COLUMN = "rename-column",
        "the previous release, still serving while the migration runs, reads and writes the \
         old name and fails",
        "expand/contract: add the new column, write both, backfill, switch reads, then drop \
         the old column in a later release (see the README)";
    RENAME_TABLE = "rename-table",
        "the previous release, still serving while the migration runs, uses the old name and \
         fails",
        "create the new table (or a view under the old name) and move over across releases; \
         drop the old name only once no running release uses it";
    DROP_COLUMN = "drop-column",
        "the previous release, still serving while the migration runs, may read or write the \
         column and fail",
        "stop using the column in release N; drop it in release N+1 and acknowledge with \
         `-- taskstore:allow drop-column because release N no longer reads it`";
    DROP_TABLE = "drop-table",
        "the previous release, still serving while the migration runs, may use the table and \
         fail; the drop also takes an ACCESS EXCLUSIVE lock",
        "stop using the table in release N; drop it in release N+1 and acknowledge why";
    DROP_INDEX = "drop-index-not-concurrently",
        "DROP INDEX takes an ACCESS EXCLUSIVE lock on the index's table",
        "DROP INDEX CONCURRENTLY in a migration with run_in_transaction = false";
    REINDEX = "reindex-not-concurrently",
        "REINDEX blocks writes to the table (and reads that use the index) until it is done",
        "REINDEX ... CONCURRENTLY in a migration with run_in_transaction = false";
    LOCK_TABLE = "lock-table",
        "LOCK TABLE takes a lock explicitly (ACCESS EXCLUSIVE unless a mode is given) and \
         holds it for the rest of the migration's transaction",
        "leave locking to the statements themselves, each under the migration's lock_timeout";
    TRUNCATE = "truncate",
        "TRUNCATE takes an ACCESS EXCLUSIVE lock and removes every row the running release \
         relies on",
        "delete in batches, or drop the table in a later release once nothing uses it";
    CONCURRENTLY_IN_TRANSACTION = "concurrently-in-transaction",
        "CONCURRENTLY cannot run inside a transaction block: the migration fails at start-up",
        "put the statement in a migration of its own whose metadata.toml says \
         run_in_transaction = false";
    MULTI_STATEMENT_NON_TRANSACTIONAL = "non-transactional-multi-statement",
        "a migration with run_in_transaction = false is sent as one query string, which \
         PostgreSQL runs as one implicit transaction (so CONCURRENTLY fails), and a failure \
         half-way leaves the statements before it applied",
        "one statement per migration with run_in_transaction = false";
    BAD_ACKNOWLEDGEMENT = "invalid-acknowledgement",
        "a `taskstore:allow` comment must name a known rule and say why: \
         `-- taskstore:allow <rule> because <reason>`",
        "name the rule id from the finding and give the reason after `because`";
    PARSE_ERROR = "unparsed-statement",
        "the statement could not be parsed, so it could not be checked",
        "rewrite it in a form the checker parses, or acknowledge it after checking by hand \
         which locks it takes";
}

/// The rule named `id`.
pub fn by_id(id: &str) -> Option<&'static Rule> {
    ALL.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_has_examples_in_the_integration_test() {
        let test = include_str!("../../tests/migrate_check.rs");
        for rule in super::ALL {
            assert!(
                test.contains(&format!("rule: \"{}\"", rule.id)),
                "{} has no dangerous/safe example in cli/tests/migrate_check.rs",
                rule.id
            );
        }
    }
}
