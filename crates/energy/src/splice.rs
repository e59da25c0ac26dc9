//! The splice primitive. Placeholder: implemented with the backfill work.
