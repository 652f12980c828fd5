//! The rejection journal: a bounded ring of what this node refused and why, and counts by
//! reason for the metrics.
//!
//! The journal is a ring of the newest [`MAX_REJECTIONS`] records, written without fsync: it
//! is diagnostics, and a peer sending garbage must not be able to make us fsync per message
//! or fill the disk.

use std::collections::BTreeMap;

use ciborium::Value;
use plexus_crypto::{sha256, Hash256};
use plexus_protocol::cbor;
use plexus_protocol::policy::Violation;
use rocksdb::{IteratorMode, WriteBatch};

use super::{keys, IngestOutcome, Log, RejectReason, StoreError, CF_REJECTED, MAX_REJECTIONS};

/// One record of the rejection journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub counter: u64,
    pub time_ms: u64,
    pub reason: String,
    pub detail: String,
    pub input_hash: Hash256,
    pub input_len: u64,
    pub source: String,
    /// For policy rejections: the rule's code and the policy version used.
    pub rule: Option<String>,
    pub policy_version: Option<u64>,
}

impl RejectReason {
    /// The stable code stored in the rejection journal.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::BadSignature => "bad-signature",
            RejectReason::PendingFull => "pending-full",
            RejectReason::WrongTopic => "wrong-topic",
            RejectReason::Quarantined => "quarantined",
            RejectReason::BadBody => "bad-body",
            RejectReason::ClockSkew => "clock-skew",
            RejectReason::Policy => "policy",
            RejectReason::Throttled => "throttled",
            RejectReason::PrunedBody => "pruned-body",
        }
    }
}

impl Log {
    /// Counts a refusal in the metrics without a journal record (for throttling, where one
    /// write per dropped message would turn a flood into a flood of writes).
    pub fn count_rejection(&self, reason: RejectReason, detail: &str) {
        *self
            .rejection_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(format!("{}:{detail}", reason.code()))
            .or_default() += 1;
    }

    /// Rejections recorded since the log opened, by reason (`policy:<rule>` for policy).
    pub fn rejection_counts(&self) -> BTreeMap<String, u64> {
        self.rejection_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The rejection journal, oldest first.
    pub fn rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_REJECTED), IteratorMode::Start)
        {
            let (key, value) = item?;
            let counter = keys::split_counter_key(&key)
                .ok_or_else(|| StoreError::Corrupt("unreadable rejection key".into()))?;
            out.push(decode_rejection(counter, &value)?);
        }
        Ok(out)
    }

    /// Records refused input in the rejection journal and returns the matching outcome.
    ///
    /// The journal is a ring of the newest [`MAX_REJECTIONS`] records, written without fsync:
    /// it is diagnostics, and a peer sending garbage must not be able to make us fsync per
    /// message or fill the disk.
    pub fn record_rejection(
        &self,
        bytes: &[u8],
        reason: RejectReason,
        detail: String,
        source: &str,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        self.write_rejection(bytes, reason, detail, None, source, now_ms)
    }

    /// Records an entry the policy refused, with the rule and the policy version used.
    pub fn record_policy_rejection(
        &self,
        bytes: &[u8],
        violation: &Violation,
        source: &str,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        self.write_rejection(
            bytes,
            RejectReason::Policy,
            violation.message.clone(),
            Some(violation),
            source,
            now_ms,
        )
    }

    fn write_rejection(
        &self,
        bytes: &[u8],
        reason: RejectReason,
        detail: String,
        violation: Option<&Violation>,
        source: &str,
        now_ms: u64,
    ) -> Result<IngestOutcome, StoreError> {
        let mut counters = self.lock_counters();
        let mut items = vec![
            Value::Integer(now_ms.into()),
            Value::Text(reason.code().into()),
            Value::Text(detail.clone()),
            Value::Bytes(sha256(bytes).0.to_vec()),
            Value::Integer((bytes.len() as u64).into()),
            Value::Text(source.to_owned()),
        ];
        let mut count_key = reason.code().to_owned();
        if let Some(violation) = violation {
            items.push(Value::Text(violation.rule.code().into()));
            items.push(match violation.policy_version {
                Some(version) => Value::Integer(version.into()),
                None => Value::Null,
            });
            count_key = format!("policy:{}", violation.rule.code());
        }
        let record = Value::Array(items);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_REJECTED),
            keys::counter_key(counters.next_rejection),
            cbor::encode(&record),
        );
        if let Some(expired) = counters.next_rejection.checked_sub(MAX_REJECTIONS) {
            batch.delete_cf(self.cf(CF_REJECTED), keys::counter_key(expired));
        }
        self.db
            .write(batch)
            .map_err(|error| self.write_failed(error))?;
        counters.next_rejection += 1;
        self.publish_stats(&counters);
        *self
            .rejection_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(count_key)
            .or_default() += 1;
        Ok(IngestOutcome::Rejected { reason, detail })
    }
}

fn decode_rejection(counter: u64, bytes: &[u8]) -> Result<Rejection, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("unreadable rejection record {counter}"));
    let Ok(Value::Array(mut items)) = cbor::decode_canonical(bytes) else {
        return Err(corrupt());
    };
    // Policy rejections carry two more items: the rule and the policy version (or null).
    let (rule, policy_version) = if items.len() == 8 {
        let version = items.pop();
        let rule = items.pop();
        let version = match version {
            Some(Value::Integer(version)) => Some(u64::try_from(version).map_err(|_| corrupt())?),
            Some(Value::Null) => None,
            _ => return Err(corrupt()),
        };
        match rule {
            Some(Value::Text(rule)) => (Some(rule), version),
            _ => return Err(corrupt()),
        }
    } else {
        (None, None)
    };
    let [Value::Integer(time), Value::Text(reason), Value::Text(detail), Value::Bytes(hash), Value::Integer(len), Value::Text(source)]: [Value; 6] =
        items.try_into().map_err(|_| corrupt())?
    else {
        return Err(corrupt());
    };
    Ok(Rejection {
        counter,
        time_ms: u64::try_from(time).map_err(|_| corrupt())?,
        reason,
        detail,
        input_hash: Hash256::from_slice(&hash).ok_or_else(corrupt)?,
        input_len: u64::try_from(len).map_err(|_| corrupt())?,
        source,
        rule,
        policy_version,
    })
}
