//! Request rate limits: a token bucket per key (an agent's host id, a client address), in memory.
//!
//! Each bucket holds up to `burst` tokens and refills at `per_minute / 60` a second; a request takes
//! one or is refused with the time until the next token (the `Retry-After`). A full bucket is the
//! same as no bucket, so buckets that refilled are dropped when the table grows past `max_keys`:
//! memory stays bounded whatever the number of clients. Limits are per replica; behind a load
//! balancer spreading clients evenly the cluster's limit is the sum.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimiter<K> {
    per_sec: f64,
    burst: f64,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_minute` requests a minute on average, `burst` at once.
    pub fn new(per_minute: u32, burst: u32, max_keys: usize) -> RateLimiter<K> {
        RateLimiter {
            per_sec: f64::from(per_minute.max(1)) / 60.0,
            burst: f64::from(burst.max(1)),
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long until one is free.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= self.max_keys && !buckets.contains_key(key) {
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, b| refilled(b, now, per_sec) < burst);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = refilled(bucket, now, self.per_sec).min(self.burst);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or(0)
    }
}

fn refilled(b: &Bucket, now: Instant, per_sec: f64) -> f64 {
    b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec
}

/// A `Retry-After` in whole seconds, never 0.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limiter = RateLimiter::new(60, 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(&"a", t0).is_ok());
        }
        let wait = limiter.check(&"a", t0).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::from_millis(900),
            "{wait:?}"
        );
        assert_eq!(retry_after_secs(wait), 1);
        // Another key is not affected.
        assert!(limiter.check(&"b", t0).is_ok());
        // One token a second comes back.
        assert!(limiter.check(&"a", t0 + Duration::from_millis(1100)).is_ok());
        assert!(limiter.check(&"a", t0 + Duration::from_millis(1200)).is_err());
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.check(&"a", later).is_ok());
        }
        assert!(limiter.check(&"a", later).is_err());
    }

    #[test]
    fn idle_buckets_are_forgotten_when_the_table_is_full() {
        let limiter = RateLimiter::new(60, 2, 10);
        let t0 = Instant::now();
        for k in 0..10 {
            limiter.check(&k, t0).unwrap();
        }
        assert_eq!(limiter.keys(), 10);
        // Ten seconds on, every bucket refilled: a new key evicts them.
        limiter.check(&100, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(limiter.keys(), 1);
    }
}
