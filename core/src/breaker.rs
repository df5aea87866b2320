//! The circuit breaker of one lane (a model on its provider), as one shard's replica sees it.
//!
//! ```text
//!            N consecutive failures, or error rate >= R over the window (>= M requests),
//!            or a rate limit with Retry-After, or a hard (auth / billing) failure
//!   Closed ─────────────────────────────────────────────────────────────────────> Open(until)
//!     ^                                                                              │ now >= until
//!     │ the probe succeeds (Change::Closed to every shard)                           v
//!     └────────────────────────────────────────────────────────────────────── HalfOpen
//!                      the probe fails: Open again, cooldown doubled (Change::Tripped)
//! ```
//!
//! Every shard keeps a replica. A replica that trips returns a [`Change`]; the shard sends it to
//! every other shard, which [`apply`](Breaker::apply) it, so a trip anywhere is a trip
//! everywhere. In half-open, [`admit`](Breaker::admit) says `Probe`: the caller must still win
//! the lane's one process-wide probe slot before it sends anything (so recovery is one probe
//! for the whole process, not one per shard).
//!
//! Cooldown: `cooldown * 2^(streak)`, capped at `max_cooldown`, with +/- `jitter`; a
//! provider's `Retry-After` is its floor; hard failures use `hard_cooldown`. The streak counts
//! successive trips and is forgotten once the lane has stayed closed for `max_cooldown`.
//!
//! Sans-io: the time is passed in, the jitter comes from a seeded generator. No allocation
//! after construction.

use crate::fault::Class;
use std::time::{Duration, Instant};

/// When a lane trips and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// `false`: lanes never open (outcomes are still counted for `/stats`).
    pub enabled: bool,
    /// Trip after this many failures in a row on one shard.
    pub consecutive_failures: u32,
    /// Trip when failures / requests over the window reach this (0 < rate <= 1).
    pub error_rate: f64,
    /// The window the error rate is measured over.
    pub window: Duration,
    /// Fewest requests in the window before the rate can trip.
    pub min_requests: u32,
    /// Cooldown of a first trip.
    pub cooldown: Duration,
    /// Longest cooldown; also how long a lane must stay closed before its streak is forgotten.
    pub max_cooldown: Duration,
    /// Cooldown after an auth or billing failure.
    pub hard_cooldown: Duration,
    /// Cooldowns vary by up to this fraction either way (0..1), so lanes do not all come back
    /// at the same instant.
    pub jitter: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            error_rate: 0.5,
            window: Duration::from_secs(30),
            min_requests: 20,
            cooldown: Duration::from_secs(2),
            max_cooldown: Duration::from_secs(120),
            hard_cooldown: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

/// Whether a request may use the lane now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: go ahead.
    Yes,
    /// Cooldown over: one probe may go, if the caller wins the process-wide probe slot.
    Probe,
    /// Open until then.
    No {
        /// When the cooldown ends.
        until: Instant,
    },
}

/// A state change one replica made, for every other replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// The lane opened.
    Tripped {
        /// The trip's number in this lane's history (replicas keep the newest).
        seq: u64,
        /// When the cooldown ends.
        until: Instant,
        /// Successive trips so far, this one included.
        streak: u32,
        /// What tripped it.
        class: Class,
        /// When it tripped (for measuring how fast the change spreads).
        at: Instant,
    },
    /// A probe succeeded: the lane closed.
    Closed {
        /// The trip this close ends.
        seq: u64,
        /// When it closed.
        at: Instant,
    },
}

/// The state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Serving.
    Closed,
    /// Cooling down.
    Open,
    /// Cooldown over; waiting for a probe to succeed.
    HalfOpen,
}

impl State {
    /// Its name in `/stats`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

const BUCKETS: usize = 10;

/// Successes and failures over a sliding window, in `BUCKETS` slices.
#[derive(Debug, Clone)]
struct Window {
    /// (ok, failed) per slice.
    counts: [(u32, u32); BUCKETS],
    /// Index of the slice `slice_start` belongs to.
    head: usize,
    slice_start: Option<Instant>,
    slice: Duration,
}

impl Window {
    fn new(window: Duration) -> Self {
        Self {
            counts: [(0, 0); BUCKETS],
            head: 0,
            slice_start: None,
            slice: (window / BUCKETS as u32).max(Duration::from_millis(1)),
        }
    }

    /// Moves the head slice forward to `now`, clearing the slices passed.
    fn roll(&mut self, now: Instant) {
        let Some(start) = self.slice_start else {
            self.slice_start = Some(now);
            return;
        };
        let passed = now.saturating_duration_since(start).as_nanos() / self.slice.as_nanos();
        if passed == 0 {
            return;
        }
        let steps = passed.min(BUCKETS as u128) as usize;
        for _ in 0..steps {
            self.head = (self.head + 1) % BUCKETS;
            self.counts[self.head] = (0, 0);
        }
        self.slice_start = Some(start + self.slice * passed.min(u32::MAX as u128) as u32);
    }

    fn add(&mut self, now: Instant, failed: bool) {
        self.roll(now);
        let c = &mut self.counts[self.head];
        if failed {
            c.1 = c.1.saturating_add(1);
        } else {
            c.0 = c.0.saturating_add(1);
        }
    }

    /// (requests, failures) in the window.
    fn totals(&self) -> (u32, u32) {
        self.counts.iter().fold((0u32, 0u32), |(r, f), (ok, bad)| {
            (
                r.saturating_add(ok.saturating_add(*bad)),
                f.saturating_add(*bad),
            )
        })
    }

    fn clear(&mut self) {
        self.counts = [(0, 0); BUCKETS];
    }
}

/// One shard's replica of one lane's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: Settings,
    consecutive: u32,
    window: Window,
    /// The newest trip this replica knows of.
    seq: u64,
    /// The newest trip known to have ended in a close (trips up to it are over).
    closed_seq: u64,
    /// `Some` while open or half-open.
    open_until: Option<Instant>,
    streak: u32,
    closed_at: Option<Instant>,
    last_class: Option<Class>,
    rng: u64,
}

impl Breaker {
    /// A closed breaker; `seed` varies the jitter between lanes and shards.
    pub fn new(settings: Settings, seed: u64) -> Self {
        Self {
            window: Window::new(settings.window),
            settings,
            consecutive: 0,
            seq: 0,
            closed_seq: 0,
            open_until: None,
            streak: 0,
            closed_at: None,
            last_class: None,
            // xorshift must not start at 0.
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// Whether a request may use the lane at `now`.
    pub fn admit(&self, now: Instant) -> Admit {
        match self.open_until {
            None => Admit::Yes,
            Some(until) if now < until => Admit::No { until },
            Some(_) => Admit::Probe,
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> State {
        match self.admit(now) {
            Admit::Yes => State::Closed,
            Admit::No { .. } => State::Open,
            Admit::Probe => State::HalfOpen,
        }
    }

    /// Time left in the cooldown.
    pub fn cooldown_left(&self, now: Instant) -> Duration {
        self.open_until
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now))
    }

    /// Successive trips so far.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// What last opened the lane.
    pub fn last_class(&self) -> Option<Class> {
        self.last_class
    }

    /// Records how a request went: `None` for an answer, `Some(class)` for a failure,
    /// `retry_after` what the provider asked for, `probe` whether this request was the lane's
    /// probe. Returns the change every other replica must apply, if the state changed.
    pub fn record(
        &mut self,
        now: Instant,
        outcome: Option<Class>,
        retry_after: Option<Duration>,
        probe: bool,
    ) -> Option<Change> {
        if !self.settings.enabled {
            return None;
        }
        // A request that was not the probe and ends while the lane is open started before the
        // trip: it tells nothing new.
        if self.open_until.is_some() && !probe {
            return None;
        }
        let failed = outcome.is_some_and(|c| c.counts_as_failure() || c.is_hard());
        if probe {
            return Some(if failed {
                self.trip(now, outcome.unwrap_or(Class::ServerError), retry_after)
            } else {
                self.close(now)
            });
        }
        let Some(class) = outcome else {
            self.consecutive = 0;
            self.window.add(now, false);
            return None;
        };
        if class.is_hard() || (class == Class::RateLimited && retry_after.is_some()) {
            return Some(self.trip(now, class, retry_after));
        }
        if !class.counts_as_failure() {
            // The provider answered; the request was at fault. No penalty, and no credit either.
            return None;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        self.window.add(now, true);
        let (requests, failures) = self.window.totals();
        let rate_trip = requests >= self.settings.min_requests.max(1)
            && f64::from(failures) >= self.settings.error_rate * f64::from(requests);
        if self.consecutive >= self.settings.consecutive_failures.max(1) || rate_trip {
            return Some(self.trip(now, class, retry_after));
        }
        None
    }

    /// Renumbers the trip this replica just made (`change`, from [`record`](Self::record)) with
    /// `seq`, a number from a counter all replicas of the lane share, so that no two trips
    /// anywhere carry the same number. Closes are left alone (they name the trip they end).
    pub fn renumber(&mut self, change: &mut Change, seq: u64) {
        if let Change::Tripped { seq: s, .. } = change
            && seq > *s
        {
            *s = seq;
            self.seq = seq;
        }
    }

    /// Takes over the state of `old` (a replica of the same lane under an earlier config) while
    /// keeping this breaker's settings: an open lane stays open across a reload. Trip numbers
    /// start again, as the new generation numbers its trips afresh.
    pub fn inherit(&mut self, old: &Breaker) {
        self.consecutive = old.consecutive;
        self.open_until = old.open_until;
        self.streak = old.streak;
        self.closed_at = old.closed_at;
        self.last_class = old.last_class;
        self.seq = 0;
        self.closed_seq = 0;
    }

    /// Applies a change another replica made. Newer trips win; a close ends the trip it names
    /// (and any older one), never a newer one.
    pub fn apply(&mut self, change: &Change) {
        match *change {
            Change::Tripped {
                seq,
                until,
                streak,
                class,
                ..
            } => {
                let newer = seq > self.seq;
                let same_later = seq == self.seq && self.open_until.is_none_or(|u| until > u);
                if seq > self.closed_seq && (newer || same_later) {
                    self.seq = seq;
                    self.open_until = Some(until);
                    self.streak = streak;
                    self.last_class = Some(class);
                    self.consecutive = 0;
                    self.window.clear();
                }
            }
            Change::Closed { seq, at } => {
                if seq >= self.seq {
                    self.seq = seq;
                    self.closed_seq = seq;
                    self.open_until = None;
                    self.closed_at = Some(at);
                    self.consecutive = 0;
                    self.window.clear();
                }
            }
        }
    }

    fn trip(&mut self, now: Instant, class: Class, retry_after: Option<Duration>) -> Change {
        let s = self.settings;
        if self.closed_at.is_some_and(|c| {
            self.open_until.is_none() && now.saturating_duration_since(c) >= s.max_cooldown
        }) {
            // Healthy long enough since the last recovery: this is a first trip again.
            self.streak = 0;
        }
        let cooldown = if class.is_hard() {
            s.hard_cooldown
        } else {
            let grown = s
                .cooldown
                .saturating_mul(1u32 << self.streak.min(20))
                .min(s.max_cooldown);
            self.jittered(grown)
        };
        let cooldown = cooldown.max(retry_after.unwrap_or_default());
        self.streak = self.streak.saturating_add(1);
        self.seq += 1;
        let until = now + cooldown;
        self.open_until = Some(until);
        self.last_class = Some(class);
        self.consecutive = 0;
        self.window.clear();
        Change::Tripped {
            seq: self.seq,
            until,
            streak: self.streak,
            class,
            at: now,
        }
    }

    fn close(&mut self, now: Instant) -> Change {
        self.open_until = None;
        self.closed_at = Some(now);
        self.closed_seq = self.seq;
        self.consecutive = 0;
        self.window.clear();
        Change::Closed {
            seq: self.seq,
            at: now,
        }
    }

    /// `d` scaled by a factor in [1 - jitter, 1 + jitter).
    fn jittered(&mut self, d: Duration) -> Duration {
        // xorshift64*: plenty for spreading cooldowns.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let unit = (r >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let j = self.settings.jitter.clamp(0.0, 0.95);
        d.mul_f64(1.0 - j + 2.0 * j * unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn settings() -> Settings {
        Settings {
            enabled: true,
            consecutive_failures: 3,
            error_rate: 0.5,
            window: Duration::from_secs(10),
            min_requests: 10,
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(8),
            hard_cooldown: Duration::from_secs(300),
            jitter: 0.0,
        }
    }

    #[test]
    fn trips_on_consecutive_failures_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), 1);
        assert_eq!(b.record(t0, Some(Class::ServerError), None, false), None);
        assert_eq!(b.record(t0, Some(Class::Timeout), None, false), None);
        assert_eq!(b.record(t0, None, None, false), None);
        assert_eq!(b.record(t0, Some(Class::Network), None, false), None);
        assert_eq!(b.record(t0, Some(Class::Overloaded), None, false), None);
        assert_eq!(b.admit(t0), Admit::Yes);
        let c = b.record(t0 + ms(5), Some(Class::ServerError), None, false);
        let Some(Change::Tripped {
            until,
            streak,
            class,
            seq,
            ..
        }) = c
        else {
            panic!("expected a trip, got {c:?}");
        };
        assert_eq!(
            (until, streak, class, seq),
            (t0 + ms(1005), 1, Class::ServerError, 1)
        );
        assert_eq!(b.admit(t0 + ms(1004)), Admit::No { until });
        assert_eq!(b.state(t0 + ms(1004)), State::Open);
        assert_eq!(b.admit(t0 + ms(1005)), Admit::Probe);
        assert_eq!(b.state(t0 + ms(1005)), State::HalfOpen);
    }

    #[test]
    fn client_errors_and_context_overflows_never_trip() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), 1);
        for i in 0..100 {
            let class = if i % 2 == 0 {
                Class::ClientError
            } else {
                Class::ContextOverflow
            };
            assert_eq!(b.record(t0 + ms(i), Some(class), None, false), None);
        }
        assert_eq!(b.admit(t0 + ms(100)), Admit::Yes);
        // ...and they do not break a run of failures either.
        b.record(t0, Some(Class::ServerError), None, false);
        b.record(t0, Some(Class::ClientError), None, false);
        b.record(t0, Some(Class::ServerError), None, false);
        assert!(
            b.record(t0, Some(Class::ServerError), None, false)
                .is_some()
        );
    }

    #[test]
    fn trips_on_the_error_rate_over_the_window_only_with_enough_requests() {
        let mut s = settings();
        s.consecutive_failures = 100;
        let t0 = Instant::now();
        let mut b = Breaker::new(s, 1);
        // 9 requests, 5 failed: over 50% but under min_requests.
        for i in 0..9u64 {
            let out = (i % 2 == 0).then_some(Class::ServerError);
            assert_eq!(b.record(t0 + ms(i), out, None, false), None);
        }
        // The 10th request fails: 6 of 10.
        assert!(
            b.record(t0 + ms(9), Some(Class::ServerError), None, false)
                .is_some()
        );

        // Failures spread thinner than the window never add up to a trip.
        let mut b = Breaker::new(s, 1);
        for i in 0..40u64 {
            // One failure and two successes every 2 s: 33%.
            let at = t0 + Duration::from_secs(2 * i);
            assert_eq!(b.record(at, Some(Class::ServerError), None, false), None);
            b.record(at, None, None, false);
            b.record(at, None, None, false);
        }
        // Old failures fall out of the window: 10 failures long ago, then successes.
        let mut b = Breaker::new(s, 1);
        for i in 0..9u64 {
            b.record(t0 + ms(i), Some(Class::Timeout), None, false);
            b.record(t0 + ms(i), None, None, false);
        }
        let later = t0 + Duration::from_secs(11);
        for i in 0..9u64 {
            assert_eq!(b.record(later + ms(i), None, None, false), None);
        }
        assert_eq!(
            b.record(later + ms(10), Some(Class::Timeout), None, false),
            None,
            "1 failure in 10 within the window"
        );
    }

    #[test]
    fn cooldown_doubles_with_each_failed_probe_up_to_the_cap_and_a_good_probe_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), 1);
        for _ in 0..3 {
            b.record(t0, Some(Class::ServerError), None, false);
        }
        let mut now = t0;
        let mut seen = Vec::new();
        for _ in 0..6 {
            now += b.cooldown_left(now);
            assert_eq!(b.admit(now), Admit::Probe);
            let Some(Change::Tripped { until, .. }) =
                b.record(now, Some(Class::ServerError), None, true)
            else {
                panic!("a failed probe re-opens")
            };
            seen.push((until - now).as_secs());
        }
        assert_eq!(seen, [2, 4, 8, 8, 8, 8]);
        now += b.cooldown_left(now);
        let Some(Change::Closed { seq, .. }) = b.record(now, None, None, true) else {
            panic!("a good probe closes")
        };
        assert_eq!(seq, 7);
        assert_eq!(b.admit(now), Admit::Yes);
        // Tripping again soon: the streak goes on (8 s, the cap).
        for _ in 0..3 {
            b.record(now, Some(Class::ServerError), None, false);
        }
        assert_eq!(b.cooldown_left(now), Duration::from_secs(8));
        // Healthy for max_cooldown after a recovery: back to the first cooldown.
        now += b.cooldown_left(now);
        b.record(now, None, None, true);
        now += Duration::from_secs(8);
        for _ in 0..3 {
            b.record(now, Some(Class::ServerError), None, false);
        }
        assert_eq!(b.cooldown_left(now), Duration::from_secs(1));
    }

    #[test]
    fn a_probe_that_hits_a_client_error_closes_the_lane() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), 1);
        for _ in 0..3 {
            b.record(t0, Some(Class::ServerError), None, false);
        }
        let now = t0 + Duration::from_secs(1);
        assert!(matches!(
            b.record(now, Some(Class::ClientError), None, true),
            Some(Change::Closed { .. })
        ));
    }

    #[test]
    fn retry_after_is_a_floor_and_opens_at_once() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), 1);
        let c = b.record(
            t0,
            Some(Class::RateLimited),
            Some(Duration::from_secs(30)),
            false,
        );
        assert!(
            matches!(c, Some(Change::Tripped { until, .. }) if until == t0 + Duration::from_secs(30))
        );
        // A shorter Retry-After than the cooldown does not shorten it.
        let mut b = Breaker::new(settings(), 1);
        let c = b.record(t0, Some(Class::RateLimited), Some(ms(100)), false);
        assert!(
            matches!(c, Some(Change::Tripped { until, .. }) if until == t0 + Duration::from_secs(1))
        );
        // A 429 without a hint is one more failure, not a trip by itself.
        let mut b = Breaker::new(settings(), 1);
        assert_eq!(b.record(t0, Some(Class::RateLimited), None, false), None);
    }

    #[test]
    fn hard_failures_open_at_once_for_the_long_cooldown() {
        let t0 = Instant::now();
        for class in [Class::AuthFailure, Class::BillingFailure] {
            let mut b = Breaker::new(settings(), 1);
            let Some(Change::Tripped {
                until, class: c, ..
            }) = b.record(t0, Some(class), None, false)
            else {
                panic!("{class:?} trips")
            };
            assert_eq!((until - t0, c), (Duration::from_secs(300), class));
            assert_eq!(b.last_class(), Some(class));
        }
    }

    #[test]
    fn outcomes_while_open_change_nothing() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), 1);
        for _ in 0..3 {
            b.record(t0, Some(Class::ServerError), None, false);
        }
        let left = b.cooldown_left(t0);
        assert_eq!(b.record(t0, Some(Class::ServerError), None, false), None);
        assert_eq!(b.record(t0, None, None, false), None);
        assert_eq!(b.cooldown_left(t0), left);
    }

    #[test]
    fn replicas_follow_newer_trips_and_closes_but_not_stale_ones() {
        let t0 = Instant::now();
        let mut a = Breaker::new(settings(), 1);
        let mut b = Breaker::new(settings(), 2);
        let mut trip = None;
        for _ in 0..3 {
            trip = a.record(t0, Some(Class::Overloaded), None, false);
        }
        let trip = trip.expect("a trips");
        b.apply(&trip);
        assert_eq!(b.admit(t0), a.admit(t0));
        assert_eq!(b.last_class(), Some(Class::Overloaded));
        // b probes after the cooldown and it succeeds; a learns of the close.
        let later = t0 + Duration::from_secs(1);
        let close = b.record(later, None, None, true).expect("close");
        a.apply(&close);
        assert_eq!(a.admit(later), Admit::Yes);
        // A stale trip (older seq) arriving late does not re-open.
        a.apply(&trip);
        assert_eq!(a.admit(later), Admit::Yes);
        // A close for an older trip does not end a newer one.
        let mut c = Breaker::new(settings(), 3);
        c.apply(&trip);
        let newer = c
            .record(later, Some(Class::Timeout), None, true)
            .expect("re-open");
        let Change::Tripped { seq, .. } = newer else {
            panic!()
        };
        assert_eq!(seq, 2);
        c.apply(&Change::Closed { seq: 1, at: later });
        assert!(matches!(c.admit(later), Admit::No { .. }));
    }

    #[test]
    fn renumbered_trips_are_told_apart_and_closes_end_only_theirs() {
        let t0 = Instant::now();
        let mut a = Breaker::new(settings(), 1);
        let mut b = Breaker::new(settings(), 2);
        let mut ta = None;
        for _ in 0..3 {
            ta = a.record(t0, Some(Class::ServerError), None, false);
        }
        let mut ta = ta.expect("a trips");
        a.renumber(&mut ta, 7);
        assert!(matches!(ta, Change::Tripped { seq: 7, .. }));
        // b never heard of it and trips on its own (its local number would also be 1).
        let mut tb = None;
        for _ in 0..3 {
            tb = b.record(t0, Some(Class::Timeout), None, false);
        }
        let mut tb = tb.expect("b trips");
        b.renumber(&mut tb, 8);
        // a probes and closes its trip 7; b's trip 8 is newer and stays.
        let later = t0 + Duration::from_secs(2);
        let close = a.record(later, None, None, true).expect("close");
        b.apply(&close);
        assert!(matches!(
            b.admit(later - Duration::from_millis(1)),
            Admit::No { .. } | Admit::Probe
        ));
        assert_ne!(
            b.admit(later),
            Admit::Yes,
            "a close of trip 7 must not end trip 8"
        );
        a.apply(&tb);
        assert_ne!(
            a.admit(later),
            Admit::Yes,
            "trip 8 reaches a after its own close"
        );
    }

    #[test]
    fn a_disabled_breaker_never_opens() {
        let t0 = Instant::now();
        let mut s = settings();
        s.enabled = false;
        let mut b = Breaker::new(s, 1);
        for class in Class::ALL {
            for _ in 0..10 {
                assert_eq!(
                    b.record(t0, Some(class), Some(Duration::from_secs(9)), false),
                    None
                );
            }
        }
        assert_eq!(b.admit(t0), Admit::Yes);
    }

    #[test]
    fn jitter_spreads_cooldowns_within_bounds() {
        let mut s = settings();
        s.jitter = 0.2;
        let t0 = Instant::now();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let mut b = Breaker::new(s, seed);
            for _ in 0..3 {
                b.record(t0, Some(Class::ServerError), None, false);
            }
            let left = b.cooldown_left(t0);
            assert!(left >= ms(800) && left < ms(1200), "{left:?}");
            seen.insert(left.as_millis());
        }
        assert!(seen.len() > 50, "jitter should vary: {} values", seen.len());
    }
}
