//! Decoded records kept between their changes, for the forward-auth fast path: a
//! session and its user are read on every check, and decoding their JSON was the
//! largest part of the check's own cost. Only the store that writes the records keeps
//! them ([`super::KvStore`]: every write goes through it), and it forgets a record in
//! the same step that changes it, so a revocation is seen by the next check.
//!
//! The race with a read in flight: a reader that missed notes the count of changes,
//! reads and decodes, keeps the record, then looks at the count again and forgets the
//! record if anything changed meanwhile. A writer applies its change, raises the count,
//! then forgets the key. Whichever order the two interleave in, a record read before a
//! change is never left behind after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Result;

/// Decoded records of one kind, by key.
pub struct Decoded<T: Clone + Send + Sync + 'static> {
    records: moka::sync::Cache<String, Arc<T>>,
    changes: AtomicU64,
}

impl<T: Clone + Send + Sync + 'static> Decoded<T> {
    pub fn new(capacity: u64) -> Self {
        Decoded {
            records: moka::sync::Cache::builder().max_capacity(capacity).build(),
            changes: AtomicU64::new(0),
        }
    }

    /// The record under `key`: kept, or read by `read` (and kept when it exists).
    pub fn get(&self, key: &str, read: impl FnOnce() -> Result<Option<T>>) -> Result<Option<T>> {
        if let Some(found) = self.records.get(key) {
            return Ok(Some(T::clone(&found)));
        }
        let before = self.changes.load(Ordering::SeqCst);
        let read = read()?;
        if let Some(record) = &read {
            self.records
                .insert(key.to_string(), Arc::new(record.clone()));
            if self.changes.load(Ordering::SeqCst) != before {
                self.records.invalidate(key);
            }
        }
        Ok(read)
    }

    /// `key` was just changed or removed in the engine: forget it.
    pub fn changed(&self, key: &[u8]) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        match std::str::from_utf8(key) {
            Ok(key) => self.records.invalidate(key),
            // Not a key this cache could hold; forget everything rather than guess.
            Err(_) => self.records.invalidate_all(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_once_then_kept_until_it_changes() {
        let decoded = Decoded::<String>::new(10);
        let mut reads = 0;
        let mut read = |v: &str| {
            reads += 1;
            Ok(Some(v.to_string()))
        };
        assert_eq!(decoded.get("a", || read("one")).unwrap().unwrap(), "one");
        assert_eq!(decoded.get("a", || read("two")).unwrap().unwrap(), "one");
        decoded.changed(b"a");
        assert_eq!(decoded.get("a", || read("two")).unwrap().unwrap(), "two");
        assert_eq!(reads, 2);
    }

    #[test]
    fn a_record_read_before_a_change_is_not_kept_after_it() {
        let decoded = Decoded::<String>::new(10);
        // The change lands while the reader is between its read and its keeping.
        let stale = decoded.get("a", || {
            decoded.changed(b"a");
            Ok(Some("before".to_string()))
        });
        assert_eq!(stale.unwrap().unwrap(), "before");
        let now = decoded.get("a", || Ok(Some("after".to_string())));
        assert_eq!(now.unwrap().unwrap(), "after");
    }

    #[test]
    fn absence_is_not_kept() {
        let decoded = Decoded::<String>::new(10);
        assert!(decoded.get("a", || Ok(None)).unwrap().is_none());
        assert_eq!(
            decoded.get("a", || Ok(Some("b".into()))).unwrap().unwrap(),
            "b"
        );
    }
}
