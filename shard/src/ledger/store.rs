//! The ledger's file: LMDB through heed. Keys (by id, and their secrets' SHA-256 digests to
//! ids) and usage totals (spend, tokens, requests) per key, environment and model, per UTC day,
//! month and all time. Only the ledger thread writes, one transaction per batch (a group
//! commit: one fsync for many settled requests).
//!
//! ```text
//!   keys      "key_..."            -> KeyRecord (JSON)
//!   digests   sha256(secret)       -> "key_..."
//!   envs      "staging"            -> EnvRecord (an environment's own caps and limits)
//!   usage     "k|key_..|daily|N"   -> Usage     (and e|env|..., m|key_..|model|..., g|model|...)
//!   leases    "k|key_..|daily|N"   -> micro-USD the shards hold on that spend account
//!   fleet     seq (u64, big-endian) -> a settlement or release Redis has not taken yet
//!                                      (fleet mode; see `crate::fleet::Op`)
//! ```
//!
//! Leases are written before they are granted. A process that dies holding leases cannot say
//! what its requests in flight spent, so on the next open each lease left in the file becomes
//! `unsettled` usage of its account: it counts against the cap as spend does, and no budget that
//! was spent or reserved before a crash ever comes back.

use busbar_core::govern::{AccountId, EnvRecord, KeyRecord, Micros, Window};
use heed::byteorder::BigEndian;
use heed::types::{Bytes, SerdeJson, Str, U64};
use heed::{Database, Env, EnvOpenOptions, RwTxn};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The count of keys ever issued, in `meta`.
const KEYS_ISSUED: &str = "keys_issued";
/// Fleet mode: the last number this node gave a settlement or release, in `meta`.
const FLEET_SEQ: &str = "fleet_seq";
/// Fleet mode: the life of Redis this node last gave its spend to, in `meta`.
const FLEET_LIFE: &str = "fleet_life";
/// Fleet mode: the node's first try to give its spend to a life: the life, and the last
/// number that try covered, in `meta`.
const FLEET_ATTEMPT_LIFE: &str = "fleet_attempt_life";
const FLEET_ATTEMPT_SEQ: &str = "fleet_attempt_seq";

/// Largest the ledger file may grow (LMDB maps it; pages are used as written).
const MAP_SIZE: usize = 4 << 30;

/// Usage totals of one subject in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub(crate) spent: Micros,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) requests: u64,
    /// Leases a crashed process held: possibly spent, so counted as spent.
    #[serde(default)]
    pub(crate) unsettled: Micros,
}

impl Usage {
    /// What counts against a cap: spend, and leases a crash left unsettled.
    pub(crate) fn charged(&self) -> Micros {
        self.spent.saturating_add(self.unsettled)
    }

    fn add(&mut self, d: &Usage) {
        self.spent = self.spent.saturating_add(d.spent);
        self.unsettled = self.unsettled.saturating_add(d.unsettled);
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
    /// When it was admitted (Unix ms): which day and month it counts in.
    pub(crate) at_ms: u64,
    pub(crate) usage: Usage,
    /// The shard whose leases it reserved against.
    pub(crate) shard: usize,
    /// Per account: what moves from that shard's lease to spent, and what was spent beyond
    /// the reservation (a provider billed more than the worst case).
    pub(crate) charges: Vec<(AccountId, u64, u64)>,
}

/// A batch's settled usage, added up per key, environment, model, day and month before it is
/// written: one read and one write per usage row per batch, however many requests it holds.
#[derive(Default)]
pub(crate) struct Tally {
    rows: std::collections::HashMap<(String, String, String, u64, u64), Usage>,
}

impl Tally {
    /// Adds one settled request.
    pub(crate) fn add(&mut self, s: Settled) {
        let day = Window::Day.period(s.at_ms).index;
        let month = Window::Month.period(s.at_ms).index;
        self.rows
            .entry((s.key, s.environment, s.model, day, month))
            .or_default()
            .add(&s.usage);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Who a usage total is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject<'a> {
    Key(&'a str),
    Environment(&'a str),
    /// A key's use of one model.
    Model(&'a str, &'a str),
    /// One model, over every key.
    ModelAll(&'a str),
}

fn usage_key(subject: Subject<'_>, window: Window, period: u64) -> String {
    let w = window.as_str();
    match subject {
        Subject::Key(k) => format!("k|{k}|{w}|{period}"),
        Subject::Environment(e) => format!("e|{e}|{w}|{period}"),
        Subject::Model(k, m) => format!("m|{k}|{m}|{w}|{period}"),
        Subject::ModelAll(m) => format!("g|{m}|{w}|{period}"),
    }
}

/// The ledger file, open. Clones share it: the ledger thread writes, the admin thread reads.
#[derive(Clone)]
pub(crate) struct Store {
    env: Env,
    keys: Database<Str, SerdeJson<KeyRecord>>,
    digests: Database<Bytes, Str>,
    envs: Database<Str, SerdeJson<EnvRecord>>,
    usage: Database<Str, SerdeJson<Usage>>,
    leases: Database<Str, SerdeJson<Micros>>,
    meta: Database<Str, SerdeJson<u64>>,
    fleet: Database<U64<BigEndian>, SerdeJson<crate::fleet::Op>>,
}

impl Store {
    /// Opens (creating if needed) the ledger in directory `dir`. `fleet`: this node is one of
    /// a fleet (the leases a crash left are journaled for Redis too).
    pub(crate) fn open(dir: &Path, fleet: bool) -> Result<Store, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut opts = EnvOpenOptions::new();
        opts.map_size(MAP_SIZE).max_dbs(8);
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
        let envs = env
            .create_database(&mut wtxn, Some("envs"))
            .map_err(|e| e.to_string())?;
        let usage = env
            .create_database(&mut wtxn, Some("usage"))
            .map_err(|e| e.to_string())?;
        let leases = env
            .create_database(&mut wtxn, Some("leases"))
            .map_err(|e| e.to_string())?;
        let meta = env
            .create_database(&mut wtxn, Some("meta"))
            .map_err(|e| e.to_string())?;
        let fleet_db = env
            .create_database(&mut wtxn, Some("fleet"))
            .map_err(|e| e.to_string())?;
        wtxn.commit().map_err(|e| e.to_string())?;
        let store = Store {
            env,
            keys,
            digests,
            envs,
            usage,
            leases,
            meta,
            fleet: fleet_db,
        };
        let mut wtxn = store.env.write_txn().map_err(|e| e.to_string())?;
        let unsettled = store
            .recover(&mut wtxn, fleet)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        wtxn.commit().map_err(|e| e.to_string())?;
        if unsettled > 0 {
            tracing::warn!(
                usd = unsettled as f64 / 1e6,
                "the ledger was not closed cleanly: leases held by requests in flight are counted as spent (unsettled)"
            );
        }
        Ok(store)
    }

    /// Turns every lease left in the file into unsettled usage of its account (and, in a
    /// fleet, into a journaled settlement for Redis, in the same transaction); returns the
    /// total.
    fn recover(&self, wtxn: &mut RwTxn<'_>, fleet: bool) -> heed::Result<Micros> {
        let left: Vec<(String, Micros)> = self
            .leases
            .iter(wtxn)?
            .filter_map(|r| r.ok())
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut total: Micros = 0;
        let mut seq = crate::fleet::next_seq(self.fleet_seq_in(wtxn)?);
        for (k, v) in left {
            let mut u = self.usage.get(wtxn, &k)?.unwrap_or_default();
            u.unsettled = u.unsettled.saturating_add(v);
            self.usage.put(wtxn, &k, &u)?;
            total = total.saturating_add(v);
            if fleet {
                seq += 1;
                let op = crate::fleet::Op::Unsettled {
                    record: k,
                    amount: v,
                };
                self.fleet_journal_in(wtxn, seq, &op)?;
                self.fleet_set_seq_in(wtxn, seq)?;
            }
        }
        self.leases.clear(wtxn)?;
        Ok(total)
    }

    /// Fleet mode: what waits for Redis, in order, the last number given and the life.
    pub(crate) fn fleet_file(&self) -> heed::Result<super::fleet_books::FleetFile> {
        let rtxn = self.env.read_txn()?;
        Ok(super::fleet_books::FleetFile {
            journal: self.fleet.iter(&rtxn)?.collect::<heed::Result<Vec<_>>>()?,
            seq: self.meta.get(&rtxn, FLEET_SEQ)?.unwrap_or(0),
            life: self.meta.get(&rtxn, FLEET_LIFE)?.unwrap_or(0),
            attempt: match (
                self.meta.get(&rtxn, FLEET_ATTEMPT_LIFE)?,
                self.meta.get(&rtxn, FLEET_ATTEMPT_SEQ)?,
            ) {
                (Some(l), Some(s)) => Some((l, s)),
                _ => None,
            },
        })
    }

    fn fleet_seq_in(&self, txn: &RwTxn<'_>) -> heed::Result<u64> {
        Ok(self.meta.get(txn, FLEET_SEQ)?.unwrap_or(0))
    }

    /// Journals `op` under its number.
    pub(crate) fn fleet_journal_in(
        &self,
        txn: &mut RwTxn<'_>,
        seq: u64,
        op: &crate::fleet::Op,
    ) -> heed::Result<()> {
        self.fleet.put(txn, &seq, op)
    }

    /// Forgets the journaled entry numbered `seq` (Redis has it).
    pub(crate) fn fleet_forget_in(&self, txn: &mut RwTxn<'_>, seq: u64) -> heed::Result<()> {
        self.fleet.delete(txn, &seq).map(|_| ())
    }

    /// Records the life of Redis the node is in.
    pub(crate) fn fleet_set_life_in(&self, txn: &mut RwTxn<'_>, life: u64) -> heed::Result<()> {
        self.meta.put(txn, FLEET_LIFE, &life)
    }

    /// Records the node's first try to give its spend to a life.
    pub(crate) fn fleet_set_attempt_in(
        &self,
        txn: &mut RwTxn<'_>,
        (life, upto): (u64, u64),
    ) -> heed::Result<()> {
        self.meta.put(txn, FLEET_ATTEMPT_LIFE, &life)?;
        self.meta.put(txn, FLEET_ATTEMPT_SEQ, &upto)
    }

    /// Records the last number given.
    pub(crate) fn fleet_set_seq_in(&self, txn: &mut RwTxn<'_>, seq: u64) -> heed::Result<()> {
        self.meta.put(txn, FLEET_SEQ, &seq)
    }

    /// A write transaction (the ledger thread's only).
    pub(crate) fn write_txn(&self) -> heed::Result<RwTxn<'_>> {
        self.env.write_txn()
    }

    /// What counts against the cap of the account stored under `record` (spend plus
    /// unsettled), read inside the ledger thread's transaction.
    pub(crate) fn charged_in(&self, txn: &RwTxn<'_>, record: &str) -> heed::Result<Micros> {
        Ok(self.usage.get(txn, record)?.map_or(0, |u| u.charged()))
    }

    /// Records that the shards hold `total` on the account stored under `record`.
    pub(crate) fn set_leased_in(
        &self,
        txn: &mut RwTxn<'_>,
        record: &str,
        total: Micros,
    ) -> heed::Result<()> {
        if total == 0 {
            self.leases.delete(txn, record)?;
        } else {
            self.leases.put(txn, record, &total)?;
        }
        Ok(())
    }

    /// Stores a key inside `txn` (and, for a new one, its secret's digest).
    pub(crate) fn put_key_in(
        &self,
        txn: &mut RwTxn<'_>,
        key: &KeyRecord,
        digest: Option<&[u8; 32]>,
    ) -> heed::Result<()> {
        self.keys.put(txn, &key.id, key)?;
        if let Some(d) = digest {
            self.digests.put(txn, d, &key.id)?;
            let n = self.meta.get(txn, KEYS_ISSUED)?.unwrap_or(0);
            self.meta.put(txn, KEYS_ISSUED, &(n + 1))?;
        }
        Ok(())
    }

    /// Whether a virtual key was ever issued (then the data plane needs a key, even after the
    /// last one is deleted).
    pub(crate) fn keys_issued(&self) -> heed::Result<bool> {
        let rtxn = self.env.read_txn()?;
        Ok(self.meta.get(&rtxn, KEYS_ISSUED)?.unwrap_or(0) > 0)
    }

    /// Deletes a key and its digest inside `txn`; its usage stays.
    pub(crate) fn delete_key_in(&self, txn: &mut RwTxn<'_>, id: &str) -> heed::Result<bool> {
        let found = self.keys.delete(txn, id)?;
        let stale: Vec<Vec<u8>> = self
            .digests
            .iter(txn)?
            .filter_map(|r| r.ok())
            .filter(|(_, v)| *v == id)
            .map(|(d, _)| d.to_vec())
            .collect();
        for d in stale {
            self.digests.delete(txn, &d)?;
        }
        Ok(found)
    }

    /// Stores an environment's limits inside `txn`.
    pub(crate) fn put_env_in(&self, txn: &mut RwTxn<'_>, env: &EnvRecord) -> heed::Result<()> {
        self.envs.put(txn, &env.name, env)
    }

    /// Forgets an environment's limits inside `txn`.
    pub(crate) fn delete_env_in(&self, txn: &mut RwTxn<'_>, name: &str) -> heed::Result<bool> {
        self.envs.delete(txn, name)
    }

    /// An environment's limits.
    pub(crate) fn env(&self, name: &str) -> heed::Result<Option<EnvRecord>> {
        let rtxn = self.env.read_txn()?;
        self.envs.get(&rtxn, name)
    }

    /// Every environment with limits, by name.
    pub(crate) fn envs(&self) -> heed::Result<Vec<EnvRecord>> {
        let rtxn = self.env.read_txn()?;
        self.envs.iter(&rtxn)?.map(|r| r.map(|(_, e)| e)).collect()
    }

    /// Every key with its secret's digest (what the shards check presented secrets against).
    pub(crate) fn keys_with_digests(&self) -> heed::Result<Vec<([u8; 32], KeyRecord)>> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for r in self.digests.iter(&rtxn)? {
            let (d, id) = r?;
            if let (Ok(d), Some(k)) = (<[u8; 32]>::try_from(d), self.keys.get(&rtxn, id)?) {
                out.push((d, k));
            }
        }
        Ok(out)
    }

    /// Stores a key (new or changed) and, for a new one, its secret's digest.
    #[cfg(test)]
    pub(crate) fn put_key(&self, key: &KeyRecord, digest: Option<&[u8; 32]>) -> heed::Result<()> {
        let mut wtxn = self.env.write_txn()?;
        self.put_key_in(&mut wtxn, key, digest)?;
        wtxn.commit()
    }

    /// A key by id.
    pub(crate) fn key(&self, id: &str) -> heed::Result<Option<KeyRecord>> {
        let rtxn = self.env.read_txn()?;
        self.keys.get(&rtxn, id)
    }

    /// The key a secret's digest belongs to.
    #[cfg(test)]
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
    #[cfg(test)]
    pub(crate) fn delete_key(&self, id: &str) -> heed::Result<bool> {
        let mut wtxn = self.env.write_txn()?;
        let found = self.delete_key_in(&mut wtxn, id)?;
        wtxn.commit()?;
        Ok(found)
    }

    /// Records a batch of settled requests in one transaction: each adds to its key, its
    /// environment and its key's model, per day, month and all time.
    #[cfg(test)]
    pub(crate) fn settle(&self, batch: &[Settled]) -> heed::Result<()> {
        let mut wtxn = self.env.write_txn()?;
        let mut tally = Tally::default();
        for s in batch {
            tally.add(s.clone());
        }
        self.write_tally_in(&mut wtxn, &mut tally)?;
        wtxn.commit()
    }

    /// Adds what `tally` holds to the usage rows (its key, its environment, its key's model
    /// and its model, per day, month and all time), inside `txn`, and empties it.
    pub(crate) fn write_tally_in(
        &self,
        txn: &mut RwTxn<'_>,
        tally: &mut Tally,
    ) -> heed::Result<()> {
        for ((key, env, model, day, month), u) in tally.rows.drain() {
            let subjects = [
                Subject::Key(&key),
                Subject::Environment(&env),
                Subject::Model(&key, &model),
                Subject::ModelAll(&model),
            ];
            // No model answered (nothing was billed): only the key and its environment count it.
            let n = if model.is_empty() { 2 } else { 4 };
            for subject in &subjects[..n] {
                for (window, period) in [
                    (Window::Day, day),
                    (Window::Month, month),
                    (Window::AllTime, 0),
                ] {
                    let k = usage_key(*subject, window, period);
                    let mut row = self.usage.get(txn, &k)?.unwrap_or_default();
                    row.add(&u);
                    self.usage.put(txn, &k, &row)?;
                }
            }
        }
        Ok(())
    }

    /// The models a key has usage of (for the admin API's per-model view).
    pub(crate) fn models_of(&self, key: &str) -> heed::Result<Vec<String>> {
        let rtxn = self.env.read_txn()?;
        let prefix = format!("m|{key}|");
        let mut out: Vec<String> = Vec::new();
        for r in self.usage.prefix_iter(&rtxn, &prefix)? {
            let (k, _) = r?;
            // m|key|model|all-time|0: the model is between the key and the window.
            let rest = &k[prefix.len()..];
            if let Some(model) = rest.strip_suffix(&format!("|{}|0", Window::AllTime.as_str())) {
                out.push(model.to_string());
            }
        }
        Ok(out)
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
            let s = Store::open(dir.path(), false).unwrap();
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
                    unsettled: 0,
                },
                shard: 0,
                charges: Vec::new(),
            };
            s.settle(&[one("gpt", NOW, 300), one("claude", NOW, 200)])
                .unwrap();
            s.settle(&[one("gpt", TOMORROW, 50)]).unwrap();
        }
        let s = Store::open(dir.path(), false).unwrap();
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
