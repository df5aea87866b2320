//! The ledger's file: LMDB through heed. Keys (by id, and their secrets' SHA-256 digests to
//! ids) and usage totals (spend, tokens, requests) per key, environment and model, per UTC day,
//! month and all time. Only the ledger thread writes, one transaction per batch (a group
//! commit: one fsync for many settled requests).
//!
//! ```text
//!   keys      "key_..."            -> KeyRecord (JSON)
//!   digests   sha256(secret)       -> "key_..."
//!   usage     "k|key_..|daily|N"   -> Usage     (and e|env|..., m|key_..|model|...)
//! ```

use busbar_core::govern::{KeyRecord, Micros, Window};
use heed::types::{Bytes, SerdeJson, Str};
use heed::{Database, Env, EnvOpenOptions};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest the ledger file may grow (LMDB maps it; pages are used as written).
const MAP_SIZE: usize = 4 << 30;

/// Usage totals of one subject in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub(crate) spent: Micros,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) requests: u64,
}

impl Usage {
    fn add(&mut self, d: &Usage) {
        self.spent = self.spent.saturating_add(d.spent);
        self.input_tokens = self.input_tokens.saturating_add(d.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(d.output_tokens);
        self.requests = self.requests.saturating_add(d.requests);
    }
}

/// One settled request, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) key: String,
    pub(crate) environment: String,
    pub(crate) model: String,
    /// When it settled (Unix ms): which day and month it counts in.
    pub(crate) at_ms: u64,
    pub(crate) usage: Usage,
}

/// Who a usage total is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject<'a> {
    Key(&'a str),
    Environment(&'a str),
    /// A key's use of one model.
    Model(&'a str, &'a str),
}

fn usage_key(subject: Subject<'_>, window: Window, period: u64) -> String {
    let w = window.as_str();
    match subject {
        Subject::Key(k) => format!("k|{k}|{w}|{period}"),
        Subject::Environment(e) => format!("e|{e}|{w}|{period}"),
        Subject::Model(k, m) => format!("m|{k}|{m}|{w}|{period}"),
    }
}

/// The ledger file, open.
pub(crate) struct Store {
    env: Env,
    keys: Database<Str, SerdeJson<KeyRecord>>,
    digests: Database<Bytes, Str>,
    usage: Database<Str, SerdeJson<Usage>>,
}

impl Store {
    /// Opens (creating if needed) the ledger in directory `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Store, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut opts = EnvOpenOptions::new();
        opts.map_size(MAP_SIZE).max_dbs(4);
        #[allow(unsafe_code)]
        // SAFETY: heed asks that one process not open the same environment twice; only the
        // ledger thread opens this directory, once, at start-up.
        let env = unsafe { opts.open(dir) }.map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut wtxn = env.write_txn().map_err(|e| e.to_string())?;
        let keys = env
            .create_database(&mut wtxn, Some("keys"))
            .map_err(|e| e.to_string())?;
        let digests = env
            .create_database(&mut wtxn, Some("digests"))
            .map_err(|e| e.to_string())?;
        let usage = env
            .create_database(&mut wtxn, Some("usage"))
            .map_err(|e| e.to_string())?;
        wtxn.commit().map_err(|e| e.to_string())?;
        Ok(Store {
            env,
            keys,
            digests,
            usage,
        })
    }

    /// Stores a key (new or changed) and, for a new one, its secret's digest.
    pub(crate) fn put_key(&self, key: &KeyRecord, digest: Option<&[u8; 32]>) -> heed::Result<()> {
        let mut wtxn = self.env.write_txn()?;
        self.keys.put(&mut wtxn, &key.id, key)?;
        if let Some(d) = digest {
            self.digests.put(&mut wtxn, d, &key.id)?;
        }
        wtxn.commit()
    }

    /// A key by id.
    pub(crate) fn key(&self, id: &str) -> heed::Result<Option<KeyRecord>> {
        let rtxn = self.env.read_txn()?;
        self.keys.get(&rtxn, id)
    }

    /// The key a secret's digest belongs to.
    pub(crate) fn key_by_digest(&self, digest: &[u8; 32]) -> heed::Result<Option<KeyRecord>> {
        let rtxn = self.env.read_txn()?;
        match self.digests.get(&rtxn, digest)? {
            Some(id) => self.keys.get(&rtxn, id),
            None => Ok(None),
        }
    }

    /// Every key, by id.
    pub(crate) fn keys(&self) -> heed::Result<Vec<KeyRecord>> {
        let rtxn = self.env.read_txn()?;
        self.keys.iter(&rtxn)?.map(|r| r.map(|(_, k)| k)).collect()
    }

    /// Deletes a key and its digest (its usage stays, for the record).
    pub(crate) fn delete_key(&self, id: &str) -> heed::Result<bool> {
        let mut wtxn = self.env.write_txn()?;
        let found = self.keys.delete(&mut wtxn, id)?;
        let stale: Vec<Vec<u8>> = self
            .digests
            .iter(&wtxn)?
            .filter_map(|r| r.ok())
            .filter(|(_, v)| *v == id)
            .map(|(d, _)| d.to_vec())
            .collect();
        for d in stale {
            self.digests.delete(&mut wtxn, &d)?;
        }
        wtxn.commit()?;
        Ok(found)
    }

    /// Records a batch of settled requests in one transaction: each adds to its key, its
    /// environment and its key's model, per day, month and all time.
    pub(crate) fn settle(&self, batch: &[Settled]) -> heed::Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for s in batch {
            let subjects = [
                Subject::Key(&s.key),
                Subject::Environment(&s.environment),
                Subject::Model(&s.key, &s.model),
            ];
            for subject in subjects {
                for window in [Window::Day, Window::Month, Window::AllTime] {
                    let k = usage_key(subject, window, window.period(s.at_ms).index);
                    let mut u = self.usage.get(&wtxn, &k)?.unwrap_or_default();
                    u.add(&s.usage);
                    self.usage.put(&mut wtxn, &k, &u)?;
                }
            }
        }
        wtxn.commit()
    }

    /// A subject's usage in the period of `window` that `at_ms` falls in.
    pub(crate) fn usage(
        &self,
        subject: Subject<'_>,
        window: Window,
        at_ms: u64,
    ) -> heed::Result<Usage> {
        let rtxn = self.env.read_txn()?;
        let k = usage_key(subject, window, window.period(at_ms).index);
        Ok(self.usage.get(&rtxn, &k)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busbar_core::govern::{Caps, Rates};

    fn key(id: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            name: "app".into(),
            environment: "staging".into(),
            allowed: vec!["fast".into()],
            caps: Caps {
                daily: Some(1_000_000),
                monthly: None,
                all_time: None,
            },
            rates: Rates::default(),
            expires_at_ms: None,
            revoked: false,
            created_at_ms: 1,
        }
    }

    /// 2026-11-24T15:49:56Z, and the next UTC day.
    const NOW: u64 = 1_795_535_396_000;
    const TOMORROW: u64 = NOW + 86_400_000;

    #[test]
    fn keys_and_usage_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let digest = busbar_core::keys::digest("bb-secret");
        {
            let s = Store::open(dir.path()).unwrap();
            s.put_key(&key("key_a"), Some(&digest)).unwrap();
            s.put_key(&key("key_b"), None).unwrap();
            let one = |m: &str, at: u64, spent: u64| Settled {
                key: "key_a".into(),
                environment: "staging".into(),
                model: m.into(),
                at_ms: at,
                usage: Usage {
                    spent,
                    input_tokens: 10,
                    output_tokens: 5,
                    requests: 1,
                },
            };
            s.settle(&[one("gpt", NOW, 300), one("claude", NOW, 200)])
                .unwrap();
            s.settle(&[one("gpt", TOMORROW, 50)]).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.key_by_digest(&digest).unwrap().unwrap().id, "key_a");
        assert_eq!(s.keys().unwrap().len(), 2);
        let day = s.usage(Subject::Key("key_a"), Window::Day, NOW).unwrap();
        assert_eq!((day.spent, day.requests, day.input_tokens), (500, 2, 20));
        let next = s
            .usage(Subject::Key("key_a"), Window::Day, TOMORROW)
            .unwrap();
        assert_eq!(next.spent, 50);
        let month = s
            .usage(Subject::Environment("staging"), Window::Month, NOW)
            .unwrap();
        assert_eq!(month.spent, 550);
        let gpt = s
            .usage(Subject::Model("key_a", "gpt"), Window::AllTime, NOW)
            .unwrap();
        assert_eq!((gpt.spent, gpt.requests), (350, 2));
        assert_eq!(
            s.usage(Subject::Key("key_b"), Window::AllTime, NOW)
                .unwrap(),
            Usage::default()
        );
        // Deleting a key forgets its secret; its usage stays.
        assert!(s.delete_key("key_a").unwrap());
        assert!(s.key_by_digest(&digest).unwrap().is_none());
        assert!(!s.delete_key("key_a").unwrap());
        assert_eq!(
            s.usage(Subject::Key("key_a"), Window::AllTime, NOW)
                .unwrap()
                .spent,
            550
        );
    }
}
