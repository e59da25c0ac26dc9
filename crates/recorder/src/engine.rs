//! Per-engine SQL: placeholders, quoting, casts, table names, integer widths.

use crate::{RecorderDb, Result};
use pwsync_store::Table;
use sqlx::Row;

/// The database engine behind a recorder URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    MySql,
    Postgres,
}

impl Engine {
    /// Short name, as [`StatisticsStore::kind`] reports it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::MySql => "mysql",
            Engine::Postgres => "postgres",
        }
    }
}

impl RecorderDb {
    /// `?` placeholders in `sql` as this engine wants them.
    pub(crate) fn sql(&self, sql: &str) -> String {
        if self.engine != Engine::Postgres {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// A column name quoted for this engine (`end` is a keyword).
    pub(crate) fn quote(&self, column: &str) -> String {
        match self.engine {
            Engine::MySql => format!("`{column}`"),
            _ => format!("\"{column}\""),
        }
    }

    pub(crate) fn text_cast(&self, expr: &str) -> String {
        match self.engine {
            Engine::MySql => format!("CAST({expr} AS CHAR)"),
            _ => format!("CAST({expr} AS TEXT)"),
        }
    }
}

pub(crate) fn table_name(table: Table) -> &'static str {
    match table {
        Table::Hourly => "statistics",
        Table::ShortTerm => "statistics_short_term",
    }
}

/// An integer column whatever width the engine gives it.
pub(crate) fn int<R>(row: &R, i: usize) -> Result<Option<i64>>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i16>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return Ok(v);
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
        return Ok(v.map(i64::from));
    }
    Ok(row.try_get::<Option<i16>, _>(i)?.map(i64::from))
}
