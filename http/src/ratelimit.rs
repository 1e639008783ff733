//! A per-client rate limit: one token bucket per IP address, so one noisy phone (or a script
//! flooding the API) is slowed down without slowing anyone else.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::ApiError;

/// Buckets idle this long are full again and can be forgotten.
const FORGET_AFTER_SECS: f64 = 600.0;
/// Beyond this many clients, forget the idle ones before adding another.
const MAX_CLIENTS: usize = 100_000;

#[derive(Clone)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub(crate) fn new(rate_per_second: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate_per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Arc::default(),
        }
    }

    /// Takes one token from `client`'s bucket, or says how many seconds until one is there.
    fn take(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            buckets.retain(|_, bucket| {
                now.duration_since(bucket.at).as_secs_f64() < FORGET_AFTER_SECS
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil() as u64)
        }
    }
}

/// The middleware. Requests that arrive without a peer address (in-process tests) share one
/// bucket.
pub(crate) async fn limit(
    State(limiter): State<RateLimiter>,
    request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    match limiter.take(client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests from {client}; retry in {wait} s"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&wait.max(1).to_string()) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_client_has_its_own_bucket_that_refills() {
        let limiter = RateLimiter::new(2, 3);
        let start = Instant::now();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert_eq!(limiter.take(a, start), Ok(()));
        }
        assert_eq!(limiter.take(a, start), Err(1), "the burst is spent");
        assert_eq!(
            limiter.take(b, start),
            Ok(()),
            "another client is not slowed"
        );
        // Two tokens a second: half a second later one is back.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.take(a, later), Ok(()));
        assert!(limiter.take(a, later).is_err());
    }
}
