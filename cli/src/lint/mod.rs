//! `taskstore migrate check`: finds, in PostgreSQL migrations' `up.sql`, the operations that
//! take long locks on tables in use, rewrite them, or break the release still serving while
//! the migration runs (the rules and their sources are in `rules.rs`).
//!
//! The SQL is read with `sqlparser` (its PostgreSQL dialect): the tokenizer splits a file into
//! statements (semicolons inside strings, dollar quotes and comments are tokens of their own)
//! and gives each its line and comments; the parser reads each statement into its syntax tree,
//! which the rules inspect. The few PostgreSQL utility statements the parser does not know
//! (`CLUSTER`, `REINDEX`, `VACUUM (…)`, `DROP INDEX CONCURRENTLY`) are recognised by their
//! leading keywords, from the same tokens. A statement that neither reads is reported
//! (`unparsed-statement`), never skipped.
//!
//! "Existing table" means any table not created earlier in the same migration: a table created
//! in the migration that alters it has no readers yet.
//!
//! A finding is acknowledged, per statement, by a comment before it (or inside it):
//! `-- taskstore:allow <rule> because <reason>`. The reason is required; an acknowledgement
//! without one, or naming an unknown rule, is itself a finding (its `statement` is the comment
//! and what is wrong with it). A comment after a statement's semicolon on the same line
//! belongs to that statement.

pub mod rules;

use std::collections::HashSet;
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnOption, Expr, ObjectName, ObjectType,
    Statement, TableConstraint, visit_expressions,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use self::rules::Rule;

/// One migration's `up.sql` to check.
#[derive(Debug, Clone)]
pub struct MigrationText {
    /// Where it comes from, as findings name it.
    pub file: String,
    pub sql: String,
    /// `false` when its `metadata.toml` says `run_in_transaction = false`.
    pub run_in_transaction: bool,
}

/// A dangerous statement.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub line: u64,
    pub rule: &'static str,
    pub why: &'static str,
    pub safe: &'static str,
    /// The statement's first line.
    pub statement: String,
}

/// A finding acknowledged by a `taskstore:allow` comment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Acknowledged {
    pub file: String,
    pub line: u64,
    pub rule: &'static str,
    pub reason: String,
}

/// What a check found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub migrations: usize,
    pub statements: usize,
    pub findings: Vec<Finding>,
    pub acknowledged: Vec<Acknowledged>,
}

/// A `CHECK (column IS NOT NULL)` constraint seen so far, and whether it is validated.
#[derive(Debug)]
struct NotNullCheck {
    table: String,
    name: String,
    column: String,
    validated: bool,
}

/// One statement: its tokens (without the semicolon), first line and comments.
struct Stmt {
    tokens: Vec<TokenWithSpan>,
    line: u64,
    comments: Vec<String>,
}

impl Stmt {
    fn significant(&self) -> impl Iterator<Item = &Token> {
        self.tokens
            .iter()
            .map(|t| &t.token)
            .filter(|t| !matches!(t, Token::Whitespace(_)))
    }

    /// The upper-case words of the statement, in order.
    fn words(&self) -> Vec<String> {
        self.significant()
            .filter_map(|t| match t {
                Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
                _ => None,
            })
            .collect()
    }

    fn first_line(&self) -> String {
        let text: String = self
            .tokens
            .iter()
            .skip_while(|t| matches!(t.token, Token::Whitespace(_)))
            .filter(|t| {
                !matches!(
                    t.token,
                    Token::Whitespace(
                        Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)
                    )
                )
            })
            .map(|t| t.token.to_string())
            .collect();
        let line = text.lines().next().unwrap_or("").trim();
        if line.chars().count() > 100 {
            format!("{}…", line.chars().take(100).collect::<String>())
        } else {
            line.to_owned()
        }
    }
}

/// Checks `migrations`, oldest first (constraints validated by an earlier migration count).
pub fn check(migrations: &[MigrationText]) -> Report {
    let mut report = Report {
        migrations: migrations.len(),
        ..Report::default()
    };
    let mut checks: Vec<NotNullCheck> = Vec::new();
    for m in migrations {
        check_one(m, &mut checks, &mut report);
    }
    report
}

fn check_one(m: &MigrationText, checks: &mut Vec<NotNullCheck>, report: &mut Report) {
    let dialect = PostgreSqlDialect {};
    let tokens = match Tokenizer::new(&dialect, &m.sql).tokenize_with_location() {
        Ok(tokens) => tokens,
        Err(e) => {
            report.findings.push(Finding {
                file: m.file.clone(),
                line: e.location.line,
                rule: rules::PARSE_ERROR.id,
                why: rules::PARSE_ERROR.why,
                safe: rules::PARSE_ERROR.safe,
                statement: e.message,
            });
            return;
        }
    };
    let statements = split(tokens);
    report.statements += statements.len();
    let mut created: HashSet<String> = HashSet::new();
    for (index, stmt) in statements.iter().enumerate() {
        let mut hits: Vec<&'static Rule> = Vec::new();
        if !m.run_in_transaction && index == 1 {
            hits.push(&rules::MULTI_STATEMENT_NON_TRANSACTIONAL);
        }
        inspect(stmt, m.run_in_transaction, &mut created, checks, &mut hits);
        let (acks, bad) = acknowledgements(stmt);
        for problem in bad {
            let rule = &rules::BAD_ACKNOWLEDGEMENT;
            report.findings.push(Finding {
                file: m.file.clone(),
                line: stmt.line,
                rule: rule.id,
                why: rule.why,
                safe: rule.safe,
                statement: problem,
            });
        }
        for rule in hits {
            match acks.iter().find(|(id, _)| *id == rule.id) {
                Some((_, reason)) => report.acknowledged.push(Acknowledged {
                    file: m.file.clone(),
                    line: stmt.line,
                    rule: rule.id,
                    reason: reason.clone(),
                }),
                None => report.findings.push(Finding {
                    file: m.file.clone(),
                    line: stmt.line,
                    rule: rule.id,
                    why: rule.why,
                    safe: rule.safe,
                    statement: stmt.first_line(),
                }),
            }
        }
    }
}

/// Splits a file's tokens at top-level semicolons; statements with no significant token are
/// dropped (their comments too: a comment acknowledges the statement that follows it).
fn split(tokens: Vec<TokenWithSpan>) -> Vec<Stmt> {
    let mut out = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    let finish = |current: &mut Vec<TokenWithSpan>, out: &mut Vec<Stmt>| {
        let tokens = std::mem::take(current);
        let Some(first) = tokens
            .iter()
            .find(|t| !matches!(t.token, Token::Whitespace(_)))
        else {
            return;
        };
        let line = first.span.start.line;
        let comments = tokens
            .iter()
            .filter_map(|t| match &t.token {
                Token::Whitespace(Whitespace::SingleLineComment { comment, .. }) => {
                    Some(comment.clone())
                }
                Token::Whitespace(Whitespace::MultiLineComment(c)) => Some(c.clone()),
                _ => None,
            })
            .collect();
        out.push(Stmt {
            tokens,
            line,
            comments,
        });
    };
    // The line of the semicolon that ended the last statement: a comment after it on the same
    // line (`DROP ...; -- taskstore:allow ...`) belongs to that statement, not the next one.
    let mut ended_on: Option<u64> = None;
    for t in tokens {
        match t.token {
            Token::SemiColon => {
                ended_on = Some(t.span.end.line);
                finish(&mut current, &mut out);
            }
            Token::EOF => {}
            Token::Whitespace(
                Whitespace::SingleLineComment { ref comment, .. }
                | Whitespace::MultiLineComment(ref comment),
            ) if ended_on == Some(t.span.start.line)
                && current.iter().all(|c| {
                    matches!(
                        c.token,
                        Token::Whitespace(Whitespace::Space | Whitespace::Tab)
                    )
                })
                && let Some(last) = out.last_mut() =>
            {
                last.comments.push(comment.clone());
            }
            Token::Whitespace(Whitespace::Space | Whitespace::Tab) => current.push(t),
            _ => {
                ended_on = None;
                current.push(t);
            }
        }
    }
    finish(&mut current, &mut out);
    out
}

/// The statement's `taskstore:allow <rule> because <reason>` comments: the acknowledged rules
/// with their reasons, and for each malformed one the comment and what is wrong with it. The
/// marker and the rule id are matched without regard to case.
fn acknowledgements(stmt: &Stmt) -> (Vec<(&'static str, String)>, Vec<String>) {
    let mut acks = Vec::new();
    let mut bad = Vec::new();
    for comment in &stmt.comments {
        let mut words = comment.split_whitespace();
        if !words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("taskstore:allow"))
        {
            continue;
        }
        let named = words.next();
        let rule = named.and_then(|id| rules::by_id(&id.to_ascii_lowercase()));
        let because = words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("because"));
        let reason = words.collect::<Vec<_>>().join(" ");
        let problem = match (named, rule) {
            (None, _) => "names no rule".to_owned(),
            (Some(id), None) => format!(
                "`{id}` is not a rule of this check (the rule ids are listed in the README and \
                 named in each finding)"
            ),
            (Some(_), Some(rule)) if because && !reason.is_empty() => {
                acks.push((rule.id, reason));
                continue;
            }
            (Some(_), Some(_)) => {
                "gives no reason: add `because <reason>` after the rule".to_owned()
            }
        };
        bad.push(format!("comment `{}`: {problem}", comment.trim()));
    }
    (acks, bad)
}

/// A table's name as PostgreSQL folds it (unquoted names fold to lower case), without schema.
fn table_key(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|i| {
            if i.quote_style.is_some() {
                i.value.clone()
            } else {
                i.value.to_lowercase()
            }
        })
        .unwrap_or_default()
}

fn ident_key(i: &sqlparser::ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// Functions whose result changes per row: a default calling one is evaluated for every
/// existing row, so the table is rewritten. (`now()` and `current_timestamp` are STABLE: one
/// value for the statement, stored as a "missing value" without a rewrite since PostgreSQL 11.)
const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
];

fn is_volatile(expr: &Expr) -> bool {
    visit_expressions(expr, |e| match e {
        Expr::Function(f) if VOLATILE.contains(&table_key(&f.name).as_str()) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// The column `expr` proves not null, for `CHECK (column IS NOT NULL)`.
fn not_null_column(expr: &Expr) -> Option<String> {
    match expr {
        Expr::IsNotNull(inner) => match inner.as_ref() {
            Expr::Identifier(i) => Some(ident_key(i)),
            _ => None,
        },
        Expr::Nested(inner) => not_null_column(inner),
        _ => None,
    }
}

/// Adds to `hits` the rules `stmt` breaks; records the tables it creates and the not-null
/// checks it adds or validates.
fn inspect(
    stmt: &Stmt,
    in_transaction: bool,
    created: &mut HashSet<String>,
    checks: &mut Vec<NotNullCheck>,
    hits: &mut Vec<&'static Rule>,
) {
    let words = stmt.words();
    let starts = |prefix: &[&str]| words.len() >= prefix.len() && words[..prefix.len()] == *prefix;
    let concurrently = words.iter().any(|w| w == "CONCURRENTLY");
    // Utility statements the parser does not read, by their leading keywords.
    if starts(&["CLUSTER"]) {
        hits.push(&rules::CLUSTER);
        return;
    }
    if starts(&["REINDEX"]) {
        if !concurrently {
            hits.push(&rules::REINDEX);
        } else if in_transaction {
            hits.push(&rules::CONCURRENTLY_IN_TRANSACTION);
        }
        return;
    }
    if starts(&["VACUUM"]) {
        if words.iter().any(|w| w == "FULL") {
            hits.push(&rules::VACUUM_FULL);
        }
        return;
    }
    if starts(&["DROP", "INDEX"]) {
        if !concurrently {
            hits.push(&rules::DROP_INDEX);
        } else if in_transaction {
            hits.push(&rules::CONCURRENTLY_IN_TRANSACTION);
        }
        return;
    }
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(stmt.tokens.clone());
    let parsed = parser.parse_statement().and_then(|s| {
        let rest = parser.peek_token();
        if rest.token == Token::EOF {
            Ok(s)
        } else {
            Err(sqlparser::parser::ParserError::ParserError(format!(
                "unexpected {} after the statement",
                rest.token
            )))
        }
    });
    let Ok(statement) = parsed else {
        hits.push(&rules::PARSE_ERROR);
        return;
    };
    match &statement {
        Statement::CreateTable(ct) => {
            created.insert(table_key(&ct.name));
        }
        Statement::CreateIndex(ci) => {
            if ci.concurrently {
                if in_transaction {
                    hits.push(&rules::CONCURRENTLY_IN_TRANSACTION);
                }
            } else if !created.contains(&table_key(&ci.table_name)) {
                hits.push(&rules::CREATE_INDEX);
            }
        }
        Statement::AlterTable(at) => {
            let table = table_key(&at.name);
            let existing = !created.contains(&table);
            for op in &at.operations {
                alter_table_op(&table, existing, op, checks, created, hits);
            }
        }
        Statement::Drop {
            object_type, names, ..
        } => match object_type {
            ObjectType::Table if names.iter().any(|n| !created.contains(&table_key(n))) => {
                hits.push(&rules::DROP_TABLE);
            }
            ObjectType::Index => hits.push(&rules::DROP_INDEX),
            _ => {}
        },
        Statement::Truncate(t)
            if t.table_names
                .iter()
                .any(|n| !created.contains(&table_key(&n.name))) =>
        {
            hits.push(&rules::TRUNCATE);
        }
        Statement::Lock(_) | Statement::LockTables { .. } => hits.push(&rules::LOCK_TABLE),
        Statement::Vacuum(v) if v.full => hits.push(&rules::VACUUM_FULL),
        _ => {}
    }
}

fn alter_table_op(
    table: &str,
    existing: bool,
    op: &AlterTableOperation,
    checks: &mut Vec<NotNullCheck>,
    created: &mut HashSet<String>,
    hits: &mut Vec<&'static Rule>,
) {
    match op {
        AlterTableOperation::AddColumn { column_def, .. } if existing => {
            let ty = column_def.data_type.to_string().to_ascii_lowercase();
            let serial = matches!(
                ty.as_str(),
                "serial" | "serial2" | "serial4" | "serial8" | "smallserial" | "bigserial"
            );
            let rewrites = column_def.options.iter().any(|o| match &o.option {
                ColumnOption::Default(expr) => is_volatile(expr),
                ColumnOption::Generated { .. } => true,
                _ => false,
            });
            if serial || rewrites {
                hits.push(&rules::VOLATILE_DEFAULT);
            }
            if column_def.options.iter().any(|o| {
                matches!(
                    o.option,
                    ColumnOption::PrimaryKey(_) | ColumnOption::Unique(_)
                )
            }) {
                hits.push(&rules::UNIQUE_CONSTRAINT);
            }
        }
        AlterTableOperation::AlterColumn { column_name, op } if existing => match op {
            AlterColumnOperation::SetDataType { .. } => hits.push(&rules::ALTER_TYPE),
            AlterColumnOperation::SetNotNull => {
                let column = ident_key(column_name);
                let proven = checks
                    .iter()
                    .any(|c| c.table == table && c.column == column && c.validated);
                if !proven {
                    hits.push(&rules::SET_NOT_NULL);
                }
            }
            _ => {}
        },
        AlterTableOperation::AddConstraint {
            constraint,
            not_valid,
        } => {
            if let TableConstraint::Check(c) = constraint
                && let Some(column) = not_null_column(&c.expr)
            {
                checks.push(NotNullCheck {
                    table: table.to_owned(),
                    name: c.name.as_ref().map(ident_key).unwrap_or_default(),
                    column,
                    validated: !not_valid,
                });
            }
            if !existing {
                return;
            }
            match constraint {
                TableConstraint::ForeignKey(_) | TableConstraint::Check(_) if !not_valid => {
                    hits.push(&rules::CONSTRAINT_NOT_VALID);
                }
                TableConstraint::Unique(_) | TableConstraint::PrimaryKey(_) => {
                    hits.push(&rules::UNIQUE_CONSTRAINT);
                }
                _ => {}
            }
        }
        AlterTableOperation::ValidateConstraint { name } => {
            let name = ident_key(name);
            for c in checks
                .iter_mut()
                .filter(|c| c.table == table && c.name == name)
            {
                c.validated = true;
            }
        }
        AlterTableOperation::RenameColumn { .. } if existing => hits.push(&rules::RENAME_COLUMN),
        AlterTableOperation::RenameTable { table_name } => {
            if existing {
                hits.push(&rules::RENAME_TABLE);
            } else {
                let (sqlparser::ast::RenameTableNameKind::As(new)
                | sqlparser::ast::RenameTableNameKind::To(new)) = table_name;
                created.insert(table_key(new));
            }
        }
        AlterTableOperation::DropColumn { .. } if existing => hits.push(&rules::DROP_COLUMN),
        _ => {}
    }
}
