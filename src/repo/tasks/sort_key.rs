//! What a task listing's cursor carries: the last row's sort key, encoded into and decoded
//! from the opaque cursor of `repo/cursor.rs`.

use chrono::DateTime;

use crate::error::Result;
use crate::models::{Task, TaskId, TaskSort, Ts, UserId};
use crate::repo::cursor;

/// The sort key of a row in a listing, as carried by a cursor.
pub(super) enum SortKey {
    Created(Ts),
    Updated(Ts),
    Priority(i16),
    Title(String),
}

impl SortKey {
    /// The key of `task` in a listing sorted by `sort`.
    pub(super) fn of(sort: TaskSort, task: &Task) -> Self {
        match sort {
            TaskSort::CreatedAsc | TaskSort::CreatedDesc => Self::Created(Ts(task.created_at)),
            TaskSort::UpdatedAsc | TaskSort::UpdatedDesc => Self::Updated(Ts(task.updated_at)),
            TaskSort::PriorityAsc | TaskSort::PriorityDesc => Self::Priority(task.priority),
            TaskSort::TitleAsc | TaskSort::TitleDesc => Self::Title(task.title.clone()),
        }
    }

    /// The cursor's sort code: 1..=8, the position in [`TaskSort::ALL`] plus one (the user
    /// listing uses 100).
    fn code(sort: TaskSort) -> u8 {
        let i = TaskSort::ALL.iter().position(|s| *s == sort).unwrap_or(0);
        u8::try_from(i + 1).unwrap_or(0)
    }

    /// The cursor that continues `owner`'s listing sorted by `sort` after the row `(self, id)`.
    pub(super) fn encode(&self, owner: UserId, sort: TaskSort, id: TaskId) -> String {
        let key = match self {
            Self::Created(t) | Self::Updated(t) => t.0.timestamp_micros().to_be_bytes().to_vec(),
            Self::Priority(p) => p.to_be_bytes().to_vec(),
            Self::Title(t) => t.as_bytes().to_vec(),
        };
        cursor::encode(owner.0, Self::code(sort), id.0, &key)
    }

    /// The row a cursor of `owner`'s listing sorted by `sort` points after; a cursor of any
    /// other listing, or damaged, is a validation error on `cursor`.
    pub(super) fn decode(owner: UserId, sort: TaskSort, raw: &str) -> Result<(TaskId, Self)> {
        let (id, key) = cursor::decode(owner.0, Self::code(sort), raw)?;
        let damaged = || cursor::invalid("is damaged");
        let time = |key: &[u8]| {
            let micros = i64::from_be_bytes(key.try_into().map_err(|_| damaged())?);
            DateTime::from_timestamp_micros(micros)
                .map(Ts)
                .ok_or_else(damaged)
        };
        let key = match sort {
            TaskSort::CreatedAsc | TaskSort::CreatedDesc => Self::Created(time(&key)?),
            TaskSort::UpdatedAsc | TaskSort::UpdatedDesc => Self::Updated(time(&key)?),
            TaskSort::PriorityAsc | TaskSort::PriorityDesc => {
                Self::Priority(i16::from_be_bytes(key.try_into().map_err(|_| damaged())?))
            }
            TaskSort::TitleAsc | TaskSort::TitleDesc => {
                Self::Title(String::from_utf8(key).map_err(|_| damaged())?)
            }
        };
        Ok((TaskId(id), key))
    }
}
