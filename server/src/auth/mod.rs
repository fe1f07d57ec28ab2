//! Who is on the other end of a connection: JWTs checked against the configured keys, and the
//! grants their claims carry (see `docs/protocol.md`, Authentication).
//!
//! [`Authenticator`] turns a token into an [`Identity`] (user id, expiry, [`Grants`]) or a
//! [`TokenError`]. Verification itself is the `jsonwebtoken` crate's; this module only decides
//! which key and algorithm a token may use — always from the configuration, never from the
//! token — and maps every refusal to a message that says what was wrong.

mod grants;
mod jwks;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

pub use grants::Grants;

use crate::config::Reader;
use crate::protocol::{ErrorCode, RequestError, check_id};

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 30;
/// The user of every connection when authentication is off (`WS_AUTH=none`).
pub const ANONYMOUS: &str = "anonymous";
/// Shortest HS256 secret accepted (RFC 7518 §3.2: a key at least as long as the hash).
const MIN_SECRET_BYTES: usize = 32;

/// A key that never shows up in logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes, redacted>)", self.0.len())
    }
}

/// How tokens are checked.
#[derive(Clone, Debug)]
pub enum Mode {
    /// `WS_AUTH=none`: everyone is [`ANONYMOUS`] with every grant (local development only).
    Disabled,
    /// Tokens are required and checked against these keys.
    Jwt {
        /// `WS_JWT_SECRET`: HS256.
        secret: Option<Secret>,
        /// `WS_JWT_JWKS_URL`: RS256/ES256 keys by `kid`.
        jwks_url: Option<String>,
        /// `WS_JWT_ISSUER`: the `iss` tokens must carry, if set.
        issuer: Option<String>,
        /// `WS_JWT_AUDIENCE`: the `aud` tokens must carry, if set.
        audience: Option<String>,
    },
}

#[derive(Clone, Debug)]
/// How clients authenticate (`WS_AUTH`, `WS_JWT_*`).
pub struct AuthConfig {
    /// Off (local development) or JWT.
    pub mode: Mode,
    /// `WS_AUTH_TIMEOUT_SECONDS`: time a connection has to authenticate.
    pub timeout: Duration,
    /// `WS_AUTH_EXPIRY_WARNING_SECONDS`: how long before `exp` the client is warned.
    pub expiry_warning: Duration,
}

impl AuthConfig {
    /// Reads the `WS_AUTH*`/`WS_JWT_*` variables; without a key and without `WS_AUTH=none`
    /// the configuration is refused (secure by default).
    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let disabled = match r.optional("WS_AUTH").as_deref() {
            None => false,
            Some("none") => true,
            Some(other) => {
                r.problem(format!(
                    "WS_AUTH={other:?} is not valid: the only value is \"none\" (turns authentication off, for local development); unset it to require tokens"
                ));
                false
            }
        };
        let secret = r.optional("WS_JWT_SECRET");
        if let Some(s) = &secret
            && s.len() < MIN_SECRET_BYTES
        {
            r.problem(format!(
                "WS_JWT_SECRET is {} bytes long; use at least {MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -base64 48`)",
                s.len()
            ));
        }
        let jwks_url = r.optional("WS_JWT_JWKS_URL");
        if let Some(u) = &jwks_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            r.problem(format!(
                "WS_JWT_JWKS_URL={u:?} is not a URL: expected https://.../.well-known/jwks.json"
            ));
        }
        let issuer = r.optional("WS_JWT_ISSUER");
        let audience = r.optional("WS_JWT_AUDIENCE");
        let timeout = Duration::from_secs(r.number("WS_AUTH_TIMEOUT_SECONDS", 10, 1, 600));
        let expiry_warning =
            Duration::from_secs(r.number("WS_AUTH_EXPIRY_WARNING_SECONDS", 60, 1, 3600));
        let has_key = secret.is_some() || jwks_url.is_some();
        let mode = if disabled {
            if has_key {
                r.problem(
                    "WS_AUTH=none is set together with WS_JWT_SECRET/WS_JWT_JWKS_URL; choose one (unset WS_AUTH to check tokens)".to_owned(),
                );
            }
            Mode::Disabled
        } else {
            if !has_key {
                r.problem(
                    "no token key: set WS_JWT_SECRET (HS256, at least 32 bytes) and/or WS_JWT_JWKS_URL (RS256/ES256), or WS_AUTH=none to run without authentication (local development only)".to_owned(),
                );
            }
            Mode::Jwt {
                secret: secret.map(|s| Secret(s.into_bytes())),
                jwks_url,
                issuer,
                audience,
            }
        };
        Self {
            mode,
            timeout,
            expiry_warning,
        }
    }
}

/// An authenticated user, as one token describes them.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The token's `sub`.
    pub user_id: Arc<str>,
    /// `exp` in unix seconds; `None` when authentication is off.
    pub expires_at: Option<u64>,
    /// What the token lets the user do.
    pub grants: Arc<Grants>,
}

impl Identity {
    /// The user of every connection when authentication is off, with every grant.
    pub fn anonymous() -> Self {
        Self {
            user_id: Arc::from(ANONYMOUS),
            expires_at: None,
            grants: Arc::new(Grants::all()),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The token's `exp` has passed.
    Expired,
    /// Anything else wrong with the token; the text says what.
    Invalid(String),
}

impl TokenError {
    /// The error code a client is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::Invalid(_) => ErrorCode::InvalidToken,
        }
    }

    /// What was wrong, for the error message and the close reason.
    pub fn message(&self) -> String {
        match self {
            TokenError::Expired => "token has expired: get a new one".to_owned(),
            TokenError::Invalid(why) => format!("token refused: {why}"),
        }
    }

    /// The error reply for this refusal.
    pub fn to_request_error(&self) -> RequestError {
        RequestError::new(self.code(), self.message())
    }
}

fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::Invalid(why.into())
}

/// The claims this server reads; the others are ignored.
#[derive(serde::Deserialize)]
struct Claims {
    /// Optional here so that a missing claim gets its own message rather than a parse error.
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    projects: Option<Vec<String>>,
    #[serde(default)]
    queues: Option<Vec<String>>,
}

/// Checks tokens with the configured keys.
pub struct Authenticator {
    disabled: bool,
    hmac: Option<DecodingKey>,
    jwks: Option<jwks::Jwks>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Authenticator {
    /// An authenticator for `config` (its JWKS, if any, is fetched by [`Self::warm_up`] or when a
    /// token needs it).
    pub fn new(config: &AuthConfig) -> Self {
        match &config.mode {
            Mode::Disabled => Self {
                disabled: true,
                hmac: None,
                jwks: None,
                issuer: None,
                audience: None,
            },
            Mode::Jwt {
                secret,
                jwks_url,
                issuer,
                audience,
            } => Self {
                disabled: false,
                hmac: secret.as_ref().map(|s| DecodingKey::from_secret(&s.0)),
                jwks: jwks_url.as_deref().map(jwks::Jwks::new),
                issuer: issuer.clone(),
                audience: audience.clone(),
            },
        }
    }

    /// `WS_AUTH=none`: nothing is checked.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Fetches the JWKS once at start, so the first client does not wait for it.
    pub async fn warm_up(&self) {
        if let Some(j) = &self.jwks {
            j.refresh_now().await;
        }
    }

    /// The identity a token proves, or why it proves nothing.
    pub async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        if self.disabled {
            return Ok(Identity::anonymous());
        }
        // The header is read only to pick the key; its `alg` must be the one that key allows.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("not a signed JWT ({})", describe(e.kind()))))?;
        let key = match header.alg {
            Algorithm::HS256 => match &self.hmac {
                Some(k) => k.clone(),
                None => return Err(invalid("HS256 tokens are not accepted by this server")),
            },
            Algorithm::RS256 | Algorithm::ES256 => {
                let Some(jwks) = &self.jwks else {
                    return Err(invalid(format!(
                        "{:?} tokens are not accepted by this server",
                        header.alg
                    )));
                };
                let Some(kid) = header.kid.as_deref() else {
                    return Err(invalid("the token has no key id (kid)"));
                };
                let (key, alg) = jwks.key(kid).await?;
                if alg != header.alg {
                    return Err(invalid(format!(
                        "key {kid:?} is a {alg:?} key, the token says {:?}",
                        header.alg
                    )));
                }
                key
            }
            other => {
                return Err(invalid(format!(
                    "algorithm {other:?} is not accepted (HS256, RS256 or ES256)"
                )));
            }
        };
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_SECONDS;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.required_spec_claims = HashSet::from(["exp".to_owned()]);
        match &self.audience {
            Some(a) => v.set_audience(&[a]),
            None => v.validate_aud = false,
        }
        if let Some(i) = &self.issuer {
            v.set_issuer(&[i]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            k => invalid(describe(k)),
        })?;
        let c = data.claims;
        let (Some(sub), Some(exp)) = (c.sub, c.exp) else {
            return Err(invalid(if c.exp.is_none() {
                "missing claim exp"
            } else {
                "missing claim sub"
            }));
        };
        check_id("claim sub", &sub).map_err(invalid)?;
        let grants = Grants::from_claims(c.projects, c.queues).map_err(invalid)?;
        Ok(Identity {
            user_id: Arc::from(sub),
            expires_at: Some(exp),
            grants: Arc::new(grants),
        })
    }
}

/// What was wrong, in words a client developer can act on.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the signature does not verify".to_owned(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf is in the future)".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".to_owned(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
        ErrorKind::InvalidAlgorithm => "algorithm does not match the key".to_owned(),
        ErrorKind::InvalidToken => "malformed token".to_owned(),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => "malformed token encoding".to_owned(),
        ErrorKind::Json(e) => format!("malformed claims: {e}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn problems(vars: &[(&str, &str)]) -> Vec<String> {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match Config::from_lookup(|k| vars.get(k).cloned()) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn without_a_key_the_server_refuses_to_start_naming_the_variables() {
        let p = problems(&[]);
        assert_eq!(p.len(), 1, "{p:?}");
        for name in ["WS_JWT_SECRET", "WS_JWT_JWKS_URL", "WS_AUTH=none"] {
            assert!(p[0].contains(name), "{name} missing from {p:?}");
        }
        assert!(problems(&[("WS_AUTH", "none")]).is_empty());
        assert!(problems(&[("WS_JWT_SECRET", &"k".repeat(32))]).is_empty());
    }

    #[test]
    fn weak_or_contradictory_settings_are_refused() {
        let p = problems(&[("WS_JWT_SECRET", "short")]);
        assert!(p[0].contains("at least 32"), "{p:?}");
        let p = problems(&[("WS_AUTH", "off")]);
        assert!(p.iter().any(|x| x.contains("WS_AUTH=\"off\"")), "{p:?}");
        let p = problems(&[("WS_AUTH", "none"), ("WS_JWT_SECRET", &"k".repeat(32))]);
        assert!(p[0].contains("choose one"), "{p:?}");
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let s = Secret(b"do-not-print-this-secret-anywhere".to_vec());
        assert!(!format!("{s:?}").contains("do-not-print"));
    }
}
