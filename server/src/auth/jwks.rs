//! The keys of a JWKS document (e.g. a Cognito user pool's), cached by key id.
//!
//! Fetched at start, again when a token names a key id the cache does not know (key rotation)
//! and when the cache is an hour old; a miss fetches at most once every
//! [`MIN_REFETCH`], so tokens with made-up key ids cannot make the server hammer the provider.
//! Only RSA (RS256) and P-256 (ES256) keys are taken; symmetric (`oct`) keys in a JWKS are
//! ignored, since a public document must never hold an HMAC secret.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::{TokenError, invalid};

const MIN_REFETCH: Duration = Duration::from_secs(5);
const MAX_AGE: Duration = Duration::from_secs(3600);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

type Keys = HashMap<String, (DecodingKey, Algorithm)>;

pub struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Keys>,
    /// When the document was last fetched (successfully or not).
    fetched: RwLock<Option<Instant>>,
    /// One fetch at a time; the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

impl Jwks {
    pub fn new(url: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            url: url.to_owned(),
            client,
            keys: RwLock::new(HashMap::new()),
            fetched: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(kid).cloned()
    }

    fn age(&self) -> Option<Duration> {
        let f = self.fetched.read().unwrap_or_else(|e| e.into_inner());
        f.map(|t| t.elapsed())
    }

    /// The key `kid` names, fetching the document when it is unknown or the cache is old.
    pub async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), TokenError> {
        let stale = self.age().is_none_or(|a| a >= MAX_AGE);
        if !stale && let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let _one = self.fetching.lock().await;
        // Another task may have fetched while this one waited.
        let age = self.age();
        if age.is_none_or(|a| a >= MIN_REFETCH) && (stale || self.cached(kid).is_none()) {
            self.fetch().await;
        }
        self.cached(kid)
            .ok_or_else(|| invalid(format!("unknown key id {:?}", crate::protocol::short(kid))))
    }

    pub async fn refresh_now(&self) {
        let _one = self.fetching.lock().await;
        self.fetch().await;
    }

    /// Replaces the cache with the document's keys; on failure keeps the old ones.
    async fn fetch(&self) {
        *self.fetched.write().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        match self.download().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "JWKS fetched");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the cached keys")
            }
        }
    }

    async fn download(&self) -> Result<Keys, String> {
        let resp = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("document of {} bytes is too large", body.len()));
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Keys::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(k) => {
                    keys.insert(kid, (k, alg));
                }
                Err(e) => tracing::warn!(kid = %kid, error = %e, "JWKS key skipped"),
            }
        }
        Ok(keys)
    }
}
