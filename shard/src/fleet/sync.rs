//! Keys and environments shared by the fleet. Redis holds them (one hash of key records, one
//! of their secrets' digests, one of environments); a change made through any node's admin API
//! is written there first, put in force on that node, then announced on a channel. Every node
//! runs a `busbar-fleet` thread that listens on the channel and, on each message and at least
//! every [`RESYNC`], compares Redis with what it has and puts every difference in force
//! through its ledger and shards, as its own admin API would.
//!
//! ```text
//!   admin (any node) ── HSET keys/digests/envs ── apply here ── PUBLISH changes
//!   busbar-fleet (every node) ── SUBSCRIBE changes / RESYNC ── HGETALL ── diff ── apply
//! ```
//!
//! Every change also counts up `{prefix}version`: a node whose last look found the same
//! version (and the same life of Redis, see `super`) reads nothing more, so the look each
//! second costs one round trip however many keys there are (a whole comparison still runs
//! at least every [`FULL_RESYNC`]).
//!
//! A deletion is a tombstone in the hash, never an absence: a Redis that lost its data (a
//! restart without persistence) is seeded again from the nodes' own records instead of
//! revoking every key. A revocation reaches every node within the channel's delivery (about
//! a millisecond on a LAN) and at worst within one [`RESYNC`].

use crate::control::{Mailbox, ShardMsg};
use crate::ledger::{AdminOp, LedgerHandle};
use busbar_core::config::Fleet;
use busbar_core::govern::{EnvRecord, KeyRecord};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Longest a node goes without comparing its keys with Redis.
pub(crate) const RESYNC: Duration = Duration::from_secs(1);
/// Longest a node goes without reading every record, whatever the version says.
const FULL_RESYNC: Duration = Duration::from_secs(60);
/// What a deleted record is replaced with.
const TOMBSTONE: &str = "deleted";
/// How long the sync thread waits for the ledger to take a change.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// The Redis names of the shared records.
#[derive(Clone)]
pub(crate) struct Names {
    keys: String,
    digests: String,
    envs: String,
    channel: String,
    version: String,
    life: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Names {
        Names {
            keys: format!("{prefix}keys"),
            digests: format!("{prefix}digests"),
            envs: format!("{prefix}envs"),
            channel: format!("{prefix}changes"),
            version: format!("{prefix}version"),
            life: format!("{prefix}life"),
        }
    }
}

/// A change made through this node's admin API, to be shared.
pub(crate) enum Change<'a> {
    Key(&'a KeyRecord, Option<&'a [u8; 32]>),
    DeleteKey(&'a str),
    Env(&'a EnvRecord),
    DeleteEnv(&'a str),
}

/// Writes a change to Redis (before this node applies it: if Redis cannot take it, nothing
/// changes anywhere).
pub(crate) fn write(
    conn: &mut redis::Connection,
    names: &Names,
    change: &Change<'_>,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    match change {
        Change::Key(k, digest) => {
            let json = serde_json::to_string(k).unwrap_or_default();
            pipe.hset(&names.keys, &k.id, json);
            if let Some(d) = digest {
                pipe.hset(&names.digests, &k.id, hex::encode(d));
            }
        }
        Change::DeleteKey(id) => {
            pipe.hset(&names.keys, *id, TOMBSTONE);
        }
        Change::Env(e) => {
            pipe.hset(
                &names.envs,
                &e.name,
                serde_json::to_string(e).unwrap_or_default(),
            );
        }
        Change::DeleteEnv(name) => {
            pipe.hset(&names.envs, *name, TOMBSTONE);
        }
    }
    pipe.incr(&names.version, 1);
    pipe.query::<()>(conn)
}

/// Tells every node to look (after this node applied the change).
pub(crate) fn announce(conn: &mut redis::Connection, names: &Names) -> redis::RedisResult<()> {
    redis::cmd("PUBLISH")
        .arg(&names.channel)
        .arg("1")
        .query::<i64>(conn)
        .map(|_| ())
}

/// What this node has in force, as the JSON Redis holds.
struct Seen {
    keys: HashMap<String, String>,
    digests: HashMap<String, String>,
    envs: HashMap<String, String>,
    /// Redis's version and life at the last whole comparison, and when it was.
    stamp: Option<(Stamp, std::time::Instant)>,
}

/// Redis's key version and life (either missing in a Redis that has neither yet).
type Stamp = (Option<u64>, Option<u64>);

/// Starts the `busbar-fleet` thread.
pub(crate) fn start(
    fleet: &Fleet,
    ledger: LedgerHandle,
    mailboxes: Arc<Vec<Mailbox>>,
    keys: &[([u8; 32], KeyRecord)],
    envs: &[EnvRecord],
) -> Result<(), String> {
    let client = super::client(fleet).map_err(|e| format!("fleet: {e}"))?;
    let names = Names::new(&fleet.key_prefix);
    let timeout = Duration::from_millis(fleet.timeout_ms);
    let seen = Seen {
        keys: keys
            .iter()
            .map(|(_, k)| (k.id.clone(), serde_json::to_string(k).unwrap_or_default()))
            .collect(),
        digests: keys
            .iter()
            .map(|(d, k)| (k.id.clone(), hex::encode(d)))
            .collect(),
        envs: envs
            .iter()
            .map(|e| (e.name.clone(), serde_json::to_string(e).unwrap_or_default()))
            .collect(),
        stamp: None,
    };
    let mut seen = seen;
    // The fleet's keys are in force here before this node takes its first request.
    let first = client
        .get_connection_with_timeout(timeout)
        .and_then(|mut c| {
            c.set_read_timeout(Some(timeout))?;
            c.set_write_timeout(Some(timeout))?;
            Ok(resync(&mut c, &names, &mut seen, &ledger, &mailboxes))
        });
    match first {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("fleet: the first key sync failed: {e}"),
        Err(e) => {
            tracing::warn!("fleet: Redis is unreachable at start; keys sync once it is back: {e}")
        }
    }
    std::thread::Builder::new()
        .name("busbar-fleet".into())
        .spawn(move || run(client, names, timeout, seen, ledger, mailboxes))
        .map_err(|e| format!("cannot start the fleet thread: {e}"))?;
    Ok(())
}

fn run(
    client: redis::Client,
    names: Names,
    timeout: Duration,
    mut seen: Seen,
    ledger: LedgerHandle,
    mailboxes: Arc<Vec<Mailbox>>,
) {
    let mut failures = 0u64;
    loop {
        let connected = client.get_connection_with_timeout(timeout).and_then(|cmd| {
            let listen = client.get_connection_with_timeout(timeout)?;
            cmd.set_read_timeout(Some(timeout))?;
            cmd.set_write_timeout(Some(timeout))?;
            listen.set_read_timeout(Some(RESYNC))?;
            Ok((cmd, listen))
        });
        let (mut cmd, mut listen) = match connected {
            Ok(c) => c,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(100) {
                    tracing::warn!(
                        "fleet: cannot reach Redis to share keys ({failures} tries): {e}"
                    );
                }
                std::thread::sleep(crate::fleet::RETRY);
                continue;
            }
        };
        failures = 0;
        let mut pubsub = listen.as_pubsub();
        if let Err(e) = pubsub.subscribe(&names.channel) {
            tracing::warn!("fleet: cannot subscribe to key changes: {e}");
            continue;
        }
        loop {
            if let Err(e) = resync(&mut cmd, &names, &mut seen, &ledger, &mailboxes) {
                tracing::warn!("fleet: key sync failed: {e}");
                break;
            }
            match pubsub.get_message() {
                Ok(_) => {}
                Err(e) if e.is_timeout() => {}
                Err(e) => {
                    tracing::warn!("fleet: the key-change channel broke: {e}");
                    break;
                }
            }
        }
    }
}

/// Compares Redis with what this node has; applies what differs, and seeds Redis with what
/// it lacks.
fn resync(
    cmd: &mut redis::Connection,
    names: &Names,
    seen: &mut Seen,
    ledger: &LedgerHandle,
    mailboxes: &[Mailbox],
) -> Result<(), String> {
    // Nothing changed since the last whole comparison (same version, same life): done.
    let stamp: Stamp = redis::pipe()
        .get(&names.version)
        .get(&names.life)
        .query(cmd)
        .map_err(|e| e.to_string())?;
    if let Some((then, at)) = seen.stamp
        && then == stamp
        && stamp.1.is_some()
        && at.elapsed() < FULL_RESYNC
    {
        return Ok(());
    }
    let keys: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&names.keys)
        .query(cmd)
        .map_err(|e| e.to_string())?;
    let digests: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&names.digests)
        .query(cmd)
        .map_err(|e| e.to_string())?;
    let envs: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&names.envs)
        .query(cmd)
        .map_err(|e| e.to_string())?;

    // What Redis lacks (it lost its data, or this node had records before the fleet): seeded.
    let mut seed = redis::pipe();
    let mut seeding = false;
    for (id, json) in &seen.keys {
        if !keys.contains_key(id) {
            seed.hset(&names.keys, id, json);
            if let Some(d) = seen.digests.get(id) {
                seed.hset(&names.digests, id, d);
            }
            seeding = true;
        }
    }
    for (name, json) in &seen.envs {
        if !envs.contains_key(name) {
            seed.hset(&names.envs, name, json);
            seeding = true;
        }
    }
    if seeding {
        seed.incr(&names.version, 1);
        seed.query::<()>(cmd).map_err(|e| e.to_string())?;
    }

    for (id, json) in &keys {
        if seen.keys.get(id) == Some(json) {
            continue;
        }
        if json == TOMBSTONE {
            if seen.keys.remove(id).is_some() {
                apply(ledger, mailboxes, AdminOp::DeleteKey(id.clone()), || {
                    ShardMsg::Key {
                        id: id.clone(),
                        digest: None,
                        record: None,
                        ack: crossbeam_channel::bounded(mailboxes.len().max(1)).0,
                    }
                })?;
            }
            seen.keys.insert(id.clone(), json.clone());
            continue;
        }
        let key: KeyRecord = match serde_json::from_str(json) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("fleet: key {id} in Redis is not a key record: {e}");
                continue;
            }
        };
        let digest = digests.get(id).and_then(|h| {
            let mut d = [0u8; 32];
            hex::decode_to_slice(h, &mut d).ok().map(|()| d)
        });
        // A digest this node has not got yet goes with the record.
        let new_digest = digest.filter(|_| seen.digests.get(id) != digests.get(id));
        let record = Arc::new(key.clone());
        apply(
            ledger,
            mailboxes,
            AdminOp::PutKey {
                key,
                digest: new_digest,
            },
            || ShardMsg::Key {
                id: id.clone(),
                digest: new_digest,
                record: Some(Arc::clone(&record)),
                ack: crossbeam_channel::bounded(mailboxes.len().max(1)).0,
            },
        )?;
        seen.keys.insert(id.clone(), json.clone());
        if let Some(h) = digests.get(id) {
            seen.digests.insert(id.clone(), h.clone());
        }
    }
    for (name, json) in &envs {
        if seen.envs.get(name) == Some(json) {
            continue;
        }
        if json == TOMBSTONE {
            if seen.envs.remove(name).is_some() {
                apply(ledger, mailboxes, AdminOp::DeleteEnv(name.clone()), || {
                    ShardMsg::Env {
                        name: name.clone(),
                        record: None,
                        ack: crossbeam_channel::bounded(mailboxes.len().max(1)).0,
                    }
                })?;
            }
            seen.envs.insert(name.clone(), json.clone());
            continue;
        }
        let env: EnvRecord = match serde_json::from_str(json) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("fleet: environment {name} in Redis is not a record: {e}");
                continue;
            }
        };
        let record = Arc::new(env.clone());
        apply(ledger, mailboxes, AdminOp::PutEnv(env), || ShardMsg::Env {
            name: name.clone(),
            record: Some(Arc::clone(&record)),
            ack: crossbeam_channel::bounded(mailboxes.len().max(1)).0,
        })?;
        seen.envs.insert(name.clone(), json.clone());
    }
    // (Read before the records: a change made meanwhile is seen at the next look.)
    seen.stamp = Some((stamp, std::time::Instant::now()));
    Ok(())
}

/// Puts a change in force here: the ledger first (it is in the file), then every shard.
fn apply(
    ledger: &LedgerHandle,
    mailboxes: &[Mailbox],
    op: AdminOp,
    msg: impl Fn() -> ShardMsg,
) -> Result<(), String> {
    ledger.admin(op, APPLY_WAIT)?;
    for m in mailboxes {
        m.send(msg());
    }
    Ok(())
}
