//! The wall clock every module reads, in UTC epoch seconds.

pub(super) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
