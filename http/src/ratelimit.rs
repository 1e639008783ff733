//! Per-client rate limits: one token bucket per IP address, so one noisy phone (or a script
//! flooding the API) is slowed down without slowing anyone else. Requests take one token of
//! the request bucket each; work (signatures to recover) is charged by the handler to a
//! second bucket, item by item, so one huge batch costs what it makes the service do.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    http::{StatusCode, request::Parts},
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

    /// Takes `cost` tokens from `client`'s bucket, or says how many seconds until they are
    /// there. A cost above the burst is charged as the burst (a full bucket).
    fn take(&self, client: IpAddr, cost: f64, now: Instant) -> Result<(), u64> {
        let cost = cost.min(self.burst);
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
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(((cost - bucket.tokens) / self.rate).ceil() as u64)
        }
    }
}

/// The client a request came from: its peer IP address (unspecified for in-process requests
/// that have none, which share one bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub IpAddr);

impl Client {
    fn of(extensions: &axum::http::Extensions) -> Self {
        Self(
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.extensions))
    }
}

/// The work budget of each client, charged by the handlers that recover signatures: a
/// request extension every router under [`crate::with_limits`] carries.
#[derive(Clone)]
pub struct WorkLimiter(RateLimiter);

impl WorkLimiter {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        Self(RateLimiter::new(per_second, burst))
    }

    /// Charges `items` units of work to `client`; a 429 naming `field`, with `Retry-After`,
    /// when its budget is spent. Nothing is charged then.
    pub fn charge(&self, client: Client, items: usize, field: &str) -> Result<(), ApiError> {
        self.0
            .take(client.0, items as f64, Instant::now())
            .map_err(|wait| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "{field}: {items} items are more work than {} may ask for now; retry in {wait} s",
                        client.0
                    ),
                )
                .retry_after(wait)
            })
    }
}

/// The middleware. Requests that arrive without a peer address (in-process tests) share one
/// bucket.
pub(crate) async fn limit(
    State(limiter): State<RateLimiter>,
    request: Request,
    next: Next,
) -> Response {
    let Client(client) = Client::of(request.extensions());
    match limiter.take(client, 1.0, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from {client}; retry in {wait} s"),
        )
        .retry_after(wait)
        .into_response(),
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
            assert_eq!(limiter.take(a, 1.0, start), Ok(()));
        }
        assert_eq!(limiter.take(a, 1.0, start), Err(1), "the burst is spent");
        assert_eq!(
            limiter.take(b, 1.0, start),
            Ok(()),
            "another client is not slowed"
        );
        // Two tokens a second: half a second later one is back.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.take(a, 1.0, later), Ok(()));
        assert!(limiter.take(a, 1.0, later).is_err());
    }

    #[test]
    fn work_is_charged_by_its_cost() {
        let limiter = RateLimiter::new(1_000, 10_000);
        let (a, now) = (IpAddr::from([10, 0, 0, 1]), Instant::now());
        assert_eq!(limiter.take(a, 10_000.0, now), Ok(()));
        assert_eq!(
            limiter.take(a, 500.0, now),
            Err(1),
            "a full batch spends the bucket"
        );
        assert_eq!(
            limiter.take(a, 5_000.0, now + Duration::from_secs(2)),
            Err(3),
            "two seconds refill 2,000; 3,000 more take three"
        );
        assert_eq!(
            limiter.take(a, 2_000.0, now + Duration::from_secs(2)),
            Ok(())
        );
        // A cost above the burst is a full bucket, never unpayable.
        let later = now + Duration::from_secs(60);
        assert_eq!(limiter.take(a, 1e9, later), Ok(()));
    }
}
