//! The ledger: the one thread that writes the LMDB file (keys, usage). Its file layer is
//! `store`; the thread, its channels from the shards (usage deltas, lease requests) and its
//! answers (lease grants, key changes) come with the governance work (issue 6).

pub(crate) mod store;
