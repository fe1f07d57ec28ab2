//! Tokens for the tests: HS256 with the test secret, RS256/ES256 with keys made at test time,
//! and a JWKS document served by a local HTTP server (127.0.0.1) whose keys a test can rotate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const SECRET: &str = "test-jwt-secret-that-is-long-enough-0123456789";
pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "ws-clients";

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a valid token for `sub`: ten minutes, project p1, queue dev.
pub fn claims(sub: &str) -> Value {
    json!({
        "sub": sub, "exp": now() + 600, "iss": ISSUER, "aud": AUDIENCE,
        "projects": ["p1"], "queues": ["dev"],
    })
}

/// `claims` with `changes` merged in (a `null` removes the claim).
pub fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

pub fn hs256_with(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// A token signed with the server's secret.
pub fn hs256(claims: &Value) -> String {
    hs256_with(SECRET.as_bytes(), claims)
}

/// An unsigned token (`alg: none`), as an attacker would make one.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// An asymmetric signing key with its public JWK.
pub struct Key {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
    /// The public key as PEM (what an attacker would use as an HMAC secret).
    pub public_pem: String,
}

impl Key {
    pub fn rsa(kid: &str) -> Self {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let private: aws_lc_rs::encoding::Pkcs8V1Der<'_> = kp.as_der().unwrap();
        let encoding =
            EncodingKey::from_rsa_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes()).unwrap();
        let public: aws_lc_rs::encoding::PublicKeyX509Der<'_> =
            aws_lc_rs::signature::KeyPair::public_key(&kp)
                .as_der()
                .unwrap();
        Self::finish(
            kid,
            Algorithm::RS256,
            encoding,
            pem("PUBLIC KEY", public.as_ref()),
        )
    }

    pub fn ec(kid: &str) -> Self {
        let kp = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap();
        let private = kp.to_pkcs8v1().unwrap();
        let encoding =
            EncodingKey::from_ec_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes()).unwrap();
        Self::finish(kid, Algorithm::ES256, encoding, String::new())
    }

    fn finish(kid: &str, alg: Algorithm, encoding: EncodingKey, public_pem: String) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk: serde_json::to_value(&jwk).unwrap(),
            public_pem,
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signed with this key but naming `kid` in the header.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&h, claims, &self.encoding).unwrap()
    }
}

/// A JWKS document on 127.0.0.1, counting how often it is fetched.
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(keys: &[&Key]) -> Self {
        let doc = Arc::new(Mutex::new(
            keys.iter().map(|k| k.jwk.clone()).collect::<Vec<Value>>(),
        ));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (d, f) = (doc.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (d, f) = (d.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let keys = d.lock().unwrap().clone();
                    axum::Json(json!({ "keys": keys }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/.well-known/jwks.json"),
            keys: doc,
            fetches,
        }
    }

    /// Replaces the document's keys (a rotation at the identity provider).
    pub fn rotate(&self, keys: &[&Key]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}
