//! Read connections to a generation's store, shared between threads.
//!
//! A SQLite connection may be used by one thread at a time. An [`Index`]
//! is shared by every thread that searches it (the graph is read-only once
//! loaded), so it keeps a small pool of read-only connections to its
//! store: a query takes one, or opens another when all are busy, and gives
//! it back when done. A published store never changes, so every connection
//! sees the same data.
//!
//! [`Index`]: crate::Index

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

pub(crate) struct ConnPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// A connection taken from the pool, returned to it when dropped.
pub(crate) struct PooledConn<'a> {
    pool: &'a ConnPool,
    conn: Option<Connection>,
}

/// Opens a read-only connection to a published store.
pub(crate) fn open_read_only(path: &std::path::Path) -> rusqlite::Result<Connection> {
    // NO_MUTEX: the pool hands a connection to one thread at a time.
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

impl ConnPool {
    /// A pool over the store at `path`, starting with `first`.
    pub(crate) fn new(path: PathBuf, first: Connection) -> ConnPool {
        ConnPool {
            path,
            idle: Mutex::new(vec![first]),
        }
    }

    pub(crate) fn get(&self) -> rusqlite::Result<PooledConn<'_>> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => open_read_only(&self.path)?,
        };
        Ok(PooledConn {
            pool: self,
            conn: Some(conn),
        })
    }
}

impl Deref for PooledConn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(c);
        }
    }
}
