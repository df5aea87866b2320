//! The Lua scripts of the fleet's books, each one atomic step in Redis (see `super` for the
//! layout of the accounts). Every script but BEAT first checks Redis's life; SETTLE and
//! RELEASE apply a node's numbered step at most once. Loaded once per connection and called
//! by SHA-1 (EVALSHA).
//!
//! ```text
//!   LEASE       grant out of cap - spent - held        KEYS account, node's set, life
//!   SETTLE      lease -> spent (+ spend beyond it)      KEYS account, life
//!   RELEASE     lease -> back to the fleet              KEYS account, life
//!   CONTRIBUTE  a node's file totals to a new life      KEYS life, its nodes, node's set, accounts...
//!   BEAT        sign of life; Redis's life (made once)  KEYS life, nodes
//!   FORGET      an operator gives back a gone node's leases (admin API)
//! ```

/// The life check every script starts with: KEYS[`$k`] the life key, the last ARGV the
/// node's life.
macro_rules! same_life {
    ($k:literal) => {
        concat!(
            "if redis.call('GET', KEYS[",
            $k,
            "]) ~= ARGV[#ARGV] then return redis.error_reply('BUSBAR_LIFE Redis is not in the life this node knows') end\n"
        )
    };
}

/// The error a script answers when Redis is not in the node's life.
pub(super) const LIFE_ERROR: &str = "BUSBAR_LIFE";

const LEASE: &str = concat!(
    same_life!(3),
    r"
local k = KEYS[1]
local spent = tonumber(redis.call('HGET', k, 'spent') or '0')
local held = tonumber(redis.call('HGET', k, 'held') or '0')
local avail = tonumber(ARGV[2]) - spent - held
if avail < 0 then avail = 0 end
local g = 0
if avail >= tonumber(ARGV[3]) and avail > 0 then
  -- What was asked, or a sixteenth of what is left if that is more (fewer round trips; idle
  -- allotment goes back within a second).
  g = math.min(avail, math.max(tonumber(ARGV[4]), math.floor(avail / 16)))
  redis.call('HINCRBY', k, 'lease:' .. ARGV[1], string.format('%.0f', g))
  redis.call('HINCRBY', k, 'held', string.format('%.0f', g))
end
if tonumber(ARGV[5]) > 0 then redis.call('PEXPIREAT', k, ARGV[5]) end
if g > 0 then
  -- The node's set of accounts, rid of those Redis has forgotten.
  redis.call('ZADD', KEYS[2], tonumber(ARGV[5]) > 0 and ARGV[5] or 'inf', k)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[6])
end
return {g, avail - g}
"
);

/// The start of SETTLE and RELEASE. ARGV[1] the node, ARGV[2] the amount, ARGV[3] the
/// call's sequence number (a node numbers its settlements and releases in the order it sends
/// them): one already applied is not applied again (a reply lost to a dropped connection is
/// sent again). `$missing`: what to do when Redis has forgotten the account. Then up to
/// `$take` of the node's lease is taken back, `a`.
macro_rules! take_back {
    ($missing:literal, $take:literal) => {
        concat!(
            same_life!(2),
            r"
local k = KEYS[1]
",
            $missing,
            r"
local sf = 'seq:' .. ARGV[1]
if tonumber(ARGV[3]) <= tonumber(redis.call('HGET', k, sf) or '0') then return -1 end
redis.call('HSET', k, sf, ARGV[3])
local f = 'lease:' .. ARGV[1]
local mine = tonumber(redis.call('HGET', k, f) or '0')
local a = math.min(",
            $take,
            r", mine)
if a > 0 then
  redis.call('HINCRBY', k, f, string.format('%.0f', -a))
  redis.call('HINCRBY', k, 'held', string.format('%.0f', -a))
end
"
        )
    };
}

/// ARGV[4] spent beyond the reservation (it came out of the node's allotment too), ARGV[5]
/// when Redis may forget the account (0: never).
const SETTLE: &str = concat!(
    take_back!("", "tonumber(ARGV[2]) + tonumber(ARGV[4])"),
    r"
redis.call('HINCRBY', k, 'spent', string.format('%.0f', tonumber(ARGV[2]) + tonumber(ARGV[4])))
if tonumber(ARGV[5]) > 0 then redis.call('PEXPIREAT', k, ARGV[5]) end
return a
"
);

/// Nothing to give back of an account Redis has forgotten (and it is not made again).
const RELEASE: &str = concat!(
    take_back!(
        "if redis.call('EXISTS', k) == 0 then return 0 end",
        "tonumber(ARGV[2])"
    ),
    "return a\n"
);

/// A node's sign of life, and Redis's life (made if there is none yet). KEYS: the life, the
/// nodes; ARGV: a new life if there is none, the node.
const BEAT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[2])
return tonumber(redis.call('GET', KEYS[1]))
";

/// The error FORGET answers for a node that is still alive.
pub(crate) const ALIVE_ERROR: &str = "BUSBAR_ALIVE";

/// Gives back everything a node that is gone for good holds (an operator's call): its lease
/// on every account its set names, then forgets the node. Refused (BUSBAR_ALIVE) when the node
/// was seen within ARGV[2] ms. KEYS: the node's set, the nodes; ARGV: the node, the window.
/// (The accounts are read from the set, so this does not run on Redis Cluster.)
pub(super) const FORGET: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local seen = redis.call('ZSCORE', KEYS[2], ARGV[1])
if seen and tonumber(seen) > now - tonumber(ARGV[2]) then
  return redis.error_reply('BUSBAR_ALIVE the node was seen ' .. (now - tonumber(seen)) .. ' ms ago')
end
local f = 'lease:' .. ARGV[1]
local n = 0
for _, k in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local mine = tonumber(redis.call('HGET', k, f) or '0')
  if mine > 0 then
    redis.call('HINCRBY', k, 'held', string.format('%.0f', -mine))
    n = n + 1
  end
  redis.call('HDEL', k, f)
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
";

/// A node's spend and holdings, given to a Redis in a new life, once per node: 1, or 0 when
/// the node had given them already. KEYS: the life, its set of nodes, the node's set of
/// accounts, then the accounts; ARGV: the node, then per account what it spent, what its
/// shards hold, and when Redis may forget it (0: never), then the life. (The node is marked
/// last: a script stopped half-way by a fault is given again whole, counting more, not less.)
const CONTRIBUTE: &str = concat!(
    same_life!(1),
    r"
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
for i = 4, #KEYS do
  local k = KEYS[i]
  local j = 2 + (i - 4) * 3
  local spent, held, keep = tonumber(ARGV[j]), tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  if spent > 0 then redis.call('HINCRBY', k, 'spent', ARGV[j]) end
  if held > 0 then
    redis.call('HINCRBY', k, 'lease:' .. ARGV[1], ARGV[j + 1])
    redis.call('HINCRBY', k, 'held', ARGV[j + 1])
    redis.call('ZADD', KEYS[3], keep > 0 and keep or 'inf', k)
  end
  if keep > 0 then redis.call('PEXPIREAT', k, keep) end
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"
);

/// The scripts, loaded into Redis on every new connection.
pub(super) struct Scripts {
    pub(super) lease: redis::Script,
    pub(super) settle: redis::Script,
    pub(super) release: redis::Script,
    pub(super) contribute: redis::Script,
    pub(super) beat: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            lease: redis::Script::new(LEASE),
            settle: redis::Script::new(SETTLE),
            release: redis::Script::new(RELEASE),
            contribute: redis::Script::new(CONTRIBUTE),
            beat: redis::Script::new(BEAT),
        }
    }

    pub(super) fn load(&self, c: &mut redis::Connection) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for code in [LEASE, SETTLE, RELEASE, CONTRIBUTE, BEAT] {
            pipe.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
        }
        pipe.query(c)
    }
}
