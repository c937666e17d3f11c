//! SQL as text: splitting a script into statements, finding the words of an expression, and
//! quoting names and values, all through DataFusion's own tokenizer and printer (sqlparser),
//! so what counts as a string, a quoted name or a comment (`--` and `/* */`) is exactly what
//! the engine reads. No hand-written lexer.

use std::ops::Range;

use datafusion::sql::sqlparser::ast::{Ident, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// `sql`'s tokens with their byte ranges, or None when it does not tokenize (an unclosed
/// string or comment).
fn tokens(sql: &str) -> Option<Vec<(Token, Range<usize>)>> {
    let dialect = GenericDialect {};
    let found: Vec<TokenWithSpan> = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    let offsets = Offsets::new(sql);
    Some(
        found
            .into_iter()
            .map(|t| {
                let range = offsets.byte(t.span.start)..offsets.byte(t.span.end);
                (t.token, range)
            })
            .collect(),
    )
}

/// Turns the tokenizer's (line, column in characters) into byte offsets.
struct Offsets<'a> {
    sql: &'a str,
    /// The byte offset of each line's start.
    lines: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(sql: &'a str) -> Self {
        let mut lines = vec![0];
        lines.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Offsets { sql, lines }
    }

    fn byte(&self, at: Location) -> usize {
        let Some(&start) = (at.line as usize)
            .checked_sub(1)
            .and_then(|l| self.lines.get(l))
        else {
            return self.sql.len();
        };
        let column = (at.column as usize).saturating_sub(1);
        self.sql[start..]
            .char_indices()
            .nth(column)
            .map_or(self.sql.len(), |(i, _)| start + i)
    }
}

fn is_blank(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

/// Splits a SQL script into statements on `;` outside strings, quoted names and comments;
/// comments and blanks before and after a statement are left out, and so are statements
/// of nothing else. A script that does not tokenize (an unclosed string) is one statement,
/// for the parser to report.
pub fn split_statements(script: &str) -> Vec<String> {
    let Some(found) = tokens(script) else {
        let s = script.trim();
        return if s.is_empty() {
            vec![]
        } else {
            vec![s.to_string()]
        };
    };
    let mut out = Vec::new();
    // The byte range from the current statement's first solid token to its last.
    let mut span: Option<Range<usize>> = None;
    for (t, r) in &found {
        match t {
            Token::SemiColon => {
                if let Some(s) = span.take() {
                    out.push(script[s].to_string());
                }
            }
            t if is_blank(t) => {}
            _ => {
                let start = span.as_ref().map_or(r.start, |s| s.start);
                span = Some(start..r.end);
            }
        }
    }
    if let Some(s) = span {
        out.push(script[s].to_string());
    }
    out
}

/// True when `text` ends with a `;` outside strings and comments: a complete statement,
/// for the prompt (an unclosed string or comment is not complete).
pub fn ends_statement(text: &str) -> bool {
    tokens(text).is_some_and(|t| {
        t.iter()
            .rev()
            .find(|(t, _)| !is_blank(t))
            .is_some_and(|(t, _)| *t == Token::SemiColon)
    })
}

/// An unquoted word of an expression: its text and byte range, and whether a `.` comes right
/// before it (a column of a table) or right after it (a table's alias).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub range: Range<usize>,
    pub after_period: bool,
    pub before_period: bool,
}

/// The unquoted words of `sql` (names and keywords; not strings, quoted names, numbers or
/// comments). Empty when it does not tokenize.
pub fn words(sql: &str) -> Vec<Word> {
    let Some(tokens) = tokens(sql) else {
        return Vec::new();
    };
    let solid: Vec<&(Token, Range<usize>)> = tokens.iter().filter(|(t, _)| !is_blank(t)).collect();
    let mut out = Vec::new();
    for (i, (t, r)) in solid.iter().enumerate() {
        let Token::Word(w) = t else { continue };
        if w.quote_style.is_some() {
            continue;
        }
        let period = |j: Option<usize>| {
            j.and_then(|j| solid.get(j))
                .is_some_and(|(t, _)| *t == Token::Period)
        };
        out.push(Word {
            text: w.value.clone(),
            range: r.clone(),
            after_period: period(i.checked_sub(1)),
            before_period: period(Some(i + 1)),
        });
    }
    out
}

/// `sql` with some words replaced: `f` gets each word that is not a column of a table
/// (`alias.word`) and returns its replacement, or None to keep it.
pub fn replace_words(sql: &str, mut f: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for w in words(sql) {
        if w.after_period {
            continue;
        }
        if let Some(rep) = f(&w.text) {
            out.push_str(&sql[last..w.range.start]);
            out.push_str(&rep);
            last = w.range.end;
        }
    }
    out.push_str(&sql[last..]);
    out
}

/// Checks that `text` is one SQL expression and nothing more (not `x > 0 LIMIT 1`, which
/// would turn a condition into a clause of the query it is put in).
pub fn check_expression(text: &str) -> Result<(), String> {
    use datafusion::sql::sqlparser::parser::{Parser, ParserError};
    let message = |e: ParserError| match e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => "it nests too deeply".into(),
    };
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).try_with_sql(text).map_err(message)?;
    parser.parse_expr().map_err(message)?;
    match parser.next_token().token {
        Token::EOF => Ok(()),
        t => Err(format!("{t} after the expression; give one condition")),
    }
}

/// True when `statement` is one query that only reads: `SELECT` (not `SELECT ... INTO`),
/// `WITH`, `VALUES`, `TABLE` and set operations of them, with no `INSERT`, `UPDATE`,
/// `DELETE` or `MERGE` inside. False for anything else, and for text that does not parse.
pub fn is_query(statement: &str) -> bool {
    use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement};
    use datafusion::sql::sqlparser::parser::Parser;
    fn reads(q: &Query) -> bool {
        let ctes = q.with.iter().flat_map(|w| &w.cte_tables);
        body_reads(&q.body) && ctes.into_iter().all(|c| reads(&c.query))
    }
    fn body_reads(b: &SetExpr) -> bool {
        match b {
            SetExpr::Select(s) => s.into.is_none(),
            SetExpr::Query(q) => reads(q),
            SetExpr::SetOperation { left, right, .. } => body_reads(left) && body_reads(right),
            SetExpr::Values(_) | SetExpr::Table(_) => true,
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                false
            }
        }
    }
    match Parser::parse_sql(&GenericDialect {}, statement).as_deref() {
        Ok([Statement::Query(q)]) => reads(q),
        _ => false,
    }
}

/// A quoted SQL name: `"name"`, a `"` inside doubled.
pub fn ident(name: &str) -> String {
    Ident::with_quote('"', name).to_string()
}

/// A SQL string literal: `'text'`, a `'` inside doubled.
pub fn literal(text: &str) -> String {
    Value::SingleQuotedString(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_ends_with_a_semicolon_outside_quotes() {
        assert!(ends_statement("SELECT 1;\n"));
        assert!(ends_statement("SELECT ';'; -- done\n"));
        assert!(!ends_statement("SELECT ';"));
        assert!(!ends_statement("SELECT 1 -- ;\n"));
        assert!(!ends_statement("SELECT 1 /* ; */"));
        assert!(!ends_statement("SELECT 1 /* ;"));
    }

    /// Only statements that read may run beside each other (`olap::script`).
    #[test]
    fn a_query_is_a_statement_that_only_reads() {
        for q in [
            "SELECT 1",
            "WITH t AS (SELECT 1 AS a) SELECT a FROM t ORDER BY a",
            "VALUES (1), (2)",
            "(SELECT 1) UNION ALL SELECT 2",
            "select country, sum(x) from sales group by rollup(country)",
        ] {
            assert!(is_query(q), "{q}");
        }
        for s in [
            "SET datafusion.execution.batch_size = 1024",
            "CREATE VIEW v AS SELECT 1",
            "CREATE TABLE t AS SELECT 1",
            "SELECT 1 INTO t",
            "INSERT INTO t VALUES (1)",
            "WITH t AS (SELECT 1) INSERT INTO u SELECT * FROM t",
            "EXPLAIN SELECT 1",
            "SELECT 1; SELECT 2",
            "SELEC 1",
            "",
        ] {
            assert!(!is_query(s), "{s}");
        }
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let s = "SELECT 'a;b'; -- c; d\nSELECT 2;\n\n";
        assert_eq!(split_statements(s), vec!["SELECT 'a;b'", "SELECT 2"]);
    }

    /// Regression (issue 16, bug 8): `SELECT 1 /* ; */` was split inside the comment.
    #[test]
    fn a_semicolon_in_a_block_comment_does_not_split() {
        // One statement: the comment is not cut at its `;` (and is left out, as blanks are).
        assert_eq!(split_statements("SELECT 1 /* ; */"), vec!["SELECT 1"]);
        assert_eq!(
            split_statements("SELECT \"a;b\" FROM t; /* x; */ SELECT 2"),
            vec!["SELECT \"a;b\" FROM t", "SELECT 2"]
        );
        // Comments alone are not statements; an unclosed string is one, for the parser.
        assert!(split_statements("-- nothing\n/* here */ ;").is_empty());
        assert_eq!(split_statements("SELECT 'x;"), vec!["SELECT 'x;"]);
        // Byte offsets hold across multi-byte characters.
        assert_eq!(
            split_statements("SELECT 'é→'; SELECT 'ü'"),
            vec!["SELECT 'é→'", "SELECT 'ü'"]
        );
    }

    #[test]
    fn words_are_outside_literals_and_know_their_periods() {
        let w = words("CASE WHEN customer.country = 'x.y' THEN fact.revenue * 1.5 END");
        let aliases: Vec<&str> = w
            .iter()
            .filter(|w| w.before_period)
            .map(|w| w.text.as_str())
            .collect();
        assert_eq!(aliases, ["customer", "fact"]);
        let out = replace_words("CAST(revenue AS DOUBLE) / orders_x + fact.orders", |w| {
            (w == "revenue" || w == "orders").then(|| format!("<{w}>"))
        });
        assert_eq!(out, "CAST(<revenue> AS DOUBLE) / orders_x + fact.orders");
    }

    /// Regression (issue 16, bug 8): a data test's `expect = ["x > 0 LIMIT 1"]` passed the
    /// check and failed at run time.
    #[test]
    fn an_expression_is_one_expression() {
        assert!(check_expression("x > 0 AND y IS NOT NULL").is_ok());
        let e = check_expression("x > 0 LIMIT 1").unwrap_err();
        assert!(e.contains("LIMIT after the expression"), "{e}");
        assert!(check_expression("x >").is_err());
        assert!(check_expression("1; DROP TABLE t").is_err());
    }

    #[test]
    fn names_and_values_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
