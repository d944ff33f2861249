//! The bytes a weight matrix is kept in: built in memory at load, or
//! borrowed from a read-only buffer that outlives the matrix (a mapped
//! file of layouts built before; see [`QMatrix::from_layout`]).
//!
//! [`QMatrix::from_layout`]: super::QMatrix::from_layout

use std::ops::Deref;
use std::sync::Arc;

/// A matrix's bytes, read as one slice whichever way they are held.
pub enum Bytes {
    /// Built in memory.
    Owned(Vec<u8>),
    /// A range of a buffer shared with other matrices.
    Shared(SharedBytes),
}

/// A range of a read-only buffer whose owner is kept alive with it.
pub struct SharedBytes {
    ptr: *const u8,
    len: usize,
    _owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
}

// SAFETY: the bytes are never written, and their owner is `Send + Sync`
// and lives as long as any range of it.
unsafe impl Send for SharedBytes {}
unsafe impl Sync for SharedBytes {}

impl Bytes {
    /// Bytes `start..start + len` of `owner`, or `None` if the range does
    /// not lie inside it.
    pub fn shared(
        owner: &Arc<dyn AsRef<[u8]> + Send + Sync>,
        start: usize,
        len: usize,
    ) -> Option<Bytes> {
        let all = (**owner).as_ref();
        let range = all.get(start..start.checked_add(len)?)?;
        Some(Bytes::Shared(SharedBytes {
            ptr: range.as_ptr(),
            len,
            _owner: Arc::clone(owner),
        }))
    }

    /// The bytes to write into, while a layout is built.
    ///
    /// Layouts are only built in memory: a shared range is never written,
    /// and asking for it is a bug.
    pub(crate) fn building(&mut self) -> &mut [u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Shared(_) => unreachable!("layouts are built in memory, never in shared bytes"),
        }
    }
}

impl Default for Bytes {
    fn default() -> Self {
        Bytes::Owned(Vec::new())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes::Owned(v)
    }
}

impl Deref for Bytes {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            // SAFETY: `ptr..ptr + len` was checked to lie inside the
            // owner's bytes, which `_owner` keeps alive and unchanged.
            Bytes::Shared(s) => unsafe { std::slice::from_raw_parts(s.ptr, s.len) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_range_reads_its_part_of_the_owner_and_rejects_ranges_outside_it() {
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new((0u8..100).collect::<Vec<u8>>());
        let b = Bytes::shared(&owner, 10, 5).unwrap();
        assert_eq!(&*b, &[10, 11, 12, 13, 14]);
        assert!(Bytes::shared(&owner, 96, 5).is_none());
        assert!(Bytes::shared(&owner, usize::MAX, 2).is_none());
        assert_eq!(&*Bytes::shared(&owner, 100, 0).unwrap(), &[] as &[u8]);
        drop(owner);
        // The range keeps its owner alive.
        assert_eq!(b[4], 14);
    }
}
