//! Answers remembered for idempotency keys (`node/src/api/idempotency.rs`), kept in the log's
//! database so that a retry after a restart still gets the first answer instead of writing
//! twice. They live in RocksDB's default column family (no entry data is kept there), each
//! under [`ANSWER_PREFIX`] and its key; the records are opaque bytes to the store.

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::{Log, StoreError};

/// Prefix of every remembered answer's database key.
const ANSWER_PREFIX: &[u8] = b"idempotency-key/";

fn answer_key(key: &str) -> Vec<u8> {
    let mut db_key = ANSWER_PREFIX.to_vec();
    db_key.extend_from_slice(key.as_bytes());
    db_key
}

impl Log {
    /// Stores `record` as the answer to idempotency key `key` and deletes the answers of
    /// `forget` (expired or evicted), in one write that is on disk when this returns.
    pub fn save_idempotent_answer(
        &self,
        key: &str,
        record: &[u8],
        forget: &[String],
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for old in forget {
            batch.delete(answer_key(old));
        }
        batch.put(answer_key(key), record);
        self.write_answers(batch)
    }

    /// Deletes the answers of `keys`, durably.
    pub fn forget_idempotent_answers(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for key in keys {
            batch.delete(answer_key(key));
        }
        self.write_answers(batch)
    }

    /// Every remembered answer: its idempotency key and record (a key that is not UTF-8,
    /// which this node never writes, is skipped).
    pub fn idempotent_answers(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut answers = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(ANSWER_PREFIX, Direction::Forward))
        {
            let (db_key, record) = item?;
            let Some(key) = db_key.strip_prefix(ANSWER_PREFIX) else {
                break;
            };
            if let Ok(key) = std::str::from_utf8(key) {
                answers.push((key.to_owned(), record.into_vec()));
            }
        }
        Ok(answers)
    }

    fn write_answers(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.db.write(batch)?;
        // Durable like an own append: the answer is about an entry already on disk. (A
        // read-only log has no syncer, and RocksDB refused the write above.)
        if let Some(wal) = &self.wal {
            wal.wait_durable(wal.written(), &self.db)?;
        }
        Ok(())
    }
}
