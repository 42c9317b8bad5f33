//! The task listing's types: which tasks ([`TaskFilter`]), in which order ([`TaskSort`]), and
//! the per-owner counts ([`TaskStats`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::validate;
use crate::error::{Error, Result};

/// Which of a user's tasks a listing returns. Every field is optional; they combine with AND.
///
/// ```
/// use taskstore::models::TaskFilter;
/// let open_and_urgent = TaskFilter {
///     completed: Some(false),
///     priority_min: Some(4),
///     search: Some("50%_off".into()), // literal: % and _ are not wildcards
///     ..TaskFilter::default()
/// };
/// # let _ = open_and_urgent;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskFilter {
    /// Only completed (`true`) or only open (`false`) tasks.
    pub completed: Option<bool>,
    /// Priority at least this (1..=5).
    pub priority_min: Option<i16>,
    /// Priority at most this (1..=5).
    pub priority_max: Option<i16>,
    /// Text that must occur in the title or the description, matched literally (`%`, `_` and
    /// `\` are ordinary characters) and case-insensitively for ASCII letters, identically on
    /// both backends. At most 255 characters.
    pub search: Option<String>,
    /// Created strictly after this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Created strictly before this instant.
    pub created_before: Option<DateTime<Utc>>,
}

impl TaskFilter {
    /// Checks the filter's values.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(p) = self.priority_min {
            validate::priority("priority_min", p)?;
        }
        if let Some(p) = self.priority_max {
            validate::priority("priority_max", p)?;
        }
        if let Some(s) = &self.search {
            validate::search(s)?;
        }
        if let Some(t) = &self.created_after {
            validate::timestamp("created_after", t)?;
        }
        if let Some(t) = &self.created_before {
            validate::timestamp("created_before", t)?;
        }
        Ok(())
    }
}

/// The order of a task listing. Equal sort keys are always ordered by id (in the same
/// direction), so pagination is stable.
///
/// Parses from and prints as `created`, `-created`, `updated`, `-updated`, `priority`,
/// `-priority`, `title`, `-title` (a leading `-` means descending).
///
/// ```
/// use taskstore::models::TaskSort;
/// let sort: TaskSort = "-priority".parse().unwrap();
/// assert_eq!(sort, TaskSort::PriorityDesc);
/// assert_eq!(sort.to_string(), "-priority");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TaskSort {
    /// Oldest first (the default).
    #[default]
    CreatedAsc,
    /// Newest first.
    CreatedDesc,
    /// Least recently changed first.
    UpdatedAsc,
    /// Most recently changed first.
    UpdatedDesc,
    /// Lowest priority (1) first.
    PriorityAsc,
    /// Highest priority (5) first.
    PriorityDesc,
    /// By title, bytewise (UTF-8 byte order, identical on both backends).
    TitleAsc,
    /// By title, bytewise, descending.
    TitleDesc,
}

impl TaskSort {
    /// Every sort order.
    pub const ALL: [TaskSort; 8] = [
        Self::CreatedAsc,
        Self::CreatedDesc,
        Self::UpdatedAsc,
        Self::UpdatedDesc,
        Self::PriorityAsc,
        Self::PriorityDesc,
        Self::TitleAsc,
        Self::TitleDesc,
    ];

    /// The name used on the command line and in cursors (`created`, `-created`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAsc => "created",
            Self::CreatedDesc => "-created",
            Self::UpdatedAsc => "updated",
            Self::UpdatedDesc => "-updated",
            Self::PriorityAsc => "priority",
            Self::PriorityDesc => "-priority",
            Self::TitleAsc => "title",
            Self::TitleDesc => "-title",
        }
    }

    /// Whether the order is descending.
    pub fn is_desc(self) -> bool {
        matches!(
            self,
            Self::CreatedDesc | Self::UpdatedDesc | Self::PriorityDesc | Self::TitleDesc
        )
    }
}

impl fmt::Display for TaskSort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskSort {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|sort| sort.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "sort",
                    "must be one of created, -created, updated, -updated, priority, -priority, \
                     title, -title",
                )
            })
    }
}

/// Counts of one user's tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStats {
    /// All tasks.
    pub total: i64,
    /// Completed tasks.
    pub completed: i64,
    /// Open tasks.
    pub open: i64,
    /// Tasks per priority: index 0 is priority 1, index 4 is priority 5.
    pub by_priority: [i64; 5],
}
