//! SQL types that both backends store natively but Diesel's multi-backend connection does not
//! know: UUIDs and UTC timestamps.
//!
//! PostgreSQL keeps them as `uuid` and `timestamptz`. SQLite has neither, so the layer stores a
//! UUID as a 16-byte `BLOB` and a timestamp as `BIGINT` microseconds since the Unix epoch: both
//! sort the same way as on PostgreSQL, which keyset pagination relies on, and both compare
//! exactly (a text timestamp would not sort correctly across fractional-second widths).

use chrono::{DateTime, Utc};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{HasSqlType, SqlType};
use diesel::sqlite::Sqlite;

use crate::conn::MultiBackend;

/// A UUID: `uuid` on PostgreSQL, a 16-byte `BLOB` on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Binary"))]
pub struct DbUuid;

/// A UTC instant with microsecond precision: `timestamptz` on PostgreSQL, `BIGINT` microseconds
/// since the Unix epoch on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Long"))]
pub struct DbTimestamp;

impl HasSqlType<DbUuid> for MultiBackend {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        MultiBackend::lookup_sql_type::<DbUuid>(lookup)
    }
}

impl HasSqlType<DbTimestamp> for MultiBackend {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        MultiBackend::lookup_sql_type::<DbTimestamp>(lookup)
    }
}

// ---- UUID ----

impl ToSql<DbUuid, Pg> for uuid::Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <uuid::Uuid as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(self, out)
    }
}

impl FromSql<DbUuid, Pg> for uuid::Uuid {
    fn from_sql(bytes: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <uuid::Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(bytes)
    }
}

impl ToSql<DbUuid, Sqlite> for uuid::Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.as_bytes().as_slice());
        Ok(IsNull::No)
    }
}

impl FromSql<DbUuid, Sqlite> for uuid::Uuid {
    fn from_sql(bytes: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let raw = <Vec<u8> as FromSql<diesel::sql_types::Binary, Sqlite>>::from_sql(bytes)?;
        Ok(uuid::Uuid::from_slice(&raw)?)
    }
}

impl ToSql<DbUuid, MultiBackend> for uuid::Uuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((DbUuid, self));
        Ok(IsNull::No)
    }
}

impl FromSql<DbUuid, MultiBackend> for uuid::Uuid {
    fn from_sql(bytes: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        bytes.from_sql::<uuid::Uuid, DbUuid>()
    }
}

// ---- timestamps ----

impl ToSql<DbTimestamp, Pg> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<diesel::sql_types::Timestamptz, Pg>>::to_sql(self, out)
    }
}

impl FromSql<DbTimestamp, Pg> for DateTime<Utc> {
    fn from_sql(bytes: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(bytes)
    }
}

impl ToSql<DbTimestamp, Sqlite> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.timestamp_micros());
        Ok(IsNull::No)
    }
}

impl FromSql<DbTimestamp, Sqlite> for DateTime<Utc> {
    fn from_sql(bytes: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let micros = <i64 as FromSql<diesel::sql_types::BigInt, Sqlite>>::from_sql(bytes)?;
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| format!("timestamp {micros} µs is out of range").into())
    }
}

impl ToSql<DbTimestamp, MultiBackend> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((DbTimestamp, self));
        Ok(IsNull::No)
    }
}

impl FromSql<DbTimestamp, MultiBackend> for DateTime<Utc> {
    fn from_sql(bytes: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        bytes.from_sql::<DateTime<Utc>, DbTimestamp>()
    }
}
