//! The wire protocol: requests a client sends, replies the server sends, and the stable error
//! codes. This file and `docs/protocol.md` describe the same contract; change them together.
//!
//! Requests are parsed field by field from borrowed raw JSON so that every mistake gets its own
//! code and message, and so that `data` is forwarded to SQS byte for byte, never re-encoded.

use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;

/// Longest accepted project id, in bytes.
pub const MAX_PROJECT_ID_BYTES: usize = 256;
/// Longest accepted `request_id`, in bytes of its JSON text.
pub const MAX_REQUEST_ID_BYTES: usize = 256;

/// The stable error codes. Clients match on these strings; never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The frame is not JSON.
    InvalidJson,
    /// The frame is JSON but not an object.
    NotAnObject,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong type or value.
    InvalidField,
    /// `action` is none of the known ones.
    UnknownAction,
    /// `type` names no agent queue.
    UnknownQueue,
    /// A binary frame: only text is read.
    BinaryNotSupported,
    /// The frame is over `WS_MAX_FRAME_BYTES`.
    FrameTooLarge,
    /// The connection follows as many projects as it may.
    TooManySubscriptions,
    /// The queue has no URL on this server.
    QueueNotConfigured,
    /// SQS refused or did not answer.
    QueueError,
    /// The request needs a session: authenticate first.
    Unauthenticated,
    /// The token is refused.
    InvalidToken,
    /// The token's `exp` has passed.
    TokenExpired,
    /// `authenticate` on an authenticated connection (use `refresh`).
    AlreadyAuthenticated,
    /// The token does not grant this.
    Forbidden,
    /// Over the connection's request rate.
    RateLimited,
    /// The reply would be over `WS_OUTBOX_BYTES`.
    ReplyTooLarge,
    /// `since` is not a position.
    InvalidSince,
}

impl ErrorCode {
    /// Every code, so a test can check that no two share a name.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::InvalidJson,
        ErrorCode::NotAnObject,
        ErrorCode::MissingField,
        ErrorCode::InvalidField,
        ErrorCode::UnknownAction,
        ErrorCode::UnknownQueue,
        ErrorCode::BinaryNotSupported,
        ErrorCode::FrameTooLarge,
        ErrorCode::TooManySubscriptions,
        ErrorCode::QueueNotConfigured,
        ErrorCode::QueueError,
        ErrorCode::Unauthenticated,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::AlreadyAuthenticated,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::ReplyTooLarge,
        ErrorCode::InvalidSince,
    ];

    /// The code as clients match it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::NotAnObject => "not_an_object",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::UnknownAction => "unknown_action",
            ErrorCode::UnknownQueue => "unknown_queue",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::QueueNotConfigured => "queue_not_configured",
            ErrorCode::QueueError => "queue_error",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::AlreadyAuthenticated => "already_authenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ReplyTooLarge => "reply_too_large",
            ErrorCode::InvalidSince => "invalid_since",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A request the server refuses, with what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The stable code.
    pub code: ErrorCode,
    /// What was wrong and what to do.
    pub message: String,
}

impl RequestError {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The four agent queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueKind {
    /// The project manager agent.
    Pm,
    /// The developer agent.
    Dev,
    /// The QA agent.
    Qa,
    /// The operations agent.
    Ops,
}

impl QueueKind {
    /// Every queue, in the order they are listed (configuration, logs, error messages).
    pub const ALL: [QueueKind; 4] = [QueueKind::Pm, QueueKind::Dev, QueueKind::Qa, QueueKind::Ops];

    /// The queue a client names in `type` (`pm`, `dev`, `qa`, `ops`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == s)
    }

    /// The names of [`QueueKind::ALL`] for a message: `pm, dev, qa or ops` (made once).
    pub fn names() -> &'static str {
        static NAMES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        NAMES.get_or_init(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|q| q.as_str()).collect();
            match names.split_last() {
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            }
        })
    }

    /// The environment variable of the queue's URL: `SQS_QUEUE_URL_DEV` for `dev`.
    pub fn url_variable(self) -> String {
        format!("SQS_QUEUE_URL_{}", self.as_str().to_ascii_uppercase())
    }

    /// The name on the wire, in grants and in `SQS_QUEUE_URL_*`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Pm => "pm",
            QueueKind::Dev => "dev",
            QueueKind::Qa => "qa",
            QueueKind::Ops => "ops",
        }
    }
}

impl fmt::Display for QueueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid request.
#[derive(Debug)]
pub enum Action {
    /// `authenticate` (first) or `refresh` (later): a token to check.
    Authenticate {
        /// The token to check.
        token: String,
        /// `refresh` rather than `authenticate`.
        refresh: bool,
    },
    /// `ping`: answered `pong`.
    Ping,
    /// `subscribe`: follow a project.
    Subscribe {
        /// The project to follow.
        project_id: String,
        /// The client's last position in the project, to replay what it missed.
        since: Option<Since>,
    },
    /// `unsubscribe`: stop following a project.
    Unsubscribe {
        /// The project to stop following.
        project_id: String,
    },
    /// `forward`: send `data` to an agent queue.
    Forward {
        /// The agent queue (`type`).
        queue: QueueKind,
        /// The project, from the request or from `data`.
        project_id: Option<String>,
        /// The client's `data` object, exactly as sent.
        data: Box<RawValue>,
    },
}

/// A parsed frame: the action or why it was refused, and the `request_id` to echo either way.
#[derive(Debug)]
pub struct Parsed {
    /// The client's `request_id`, to echo.
    pub request_id: Option<Box<RawValue>>,
    /// The request, or why it is refused.
    pub action: Result<Action, RequestError>,
}

/// Every known field as borrowed raw JSON, so each one is checked with its own message.
#[derive(serde::Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    action: Option<&'a RawValue>,
    #[serde(borrow)]
    request_id: Option<&'a RawValue>,
    #[serde(borrow)]
    project_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    token: Option<&'a RawValue>,
    since: Option<&'a RawValue>,
}

/// Parses one text frame.
pub fn parse_request(text: &str) -> Parsed {
    let fields: Fields<'_> = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let first = text.trim_start().chars().next();
            let error = if e.is_data() && first != Some('{') {
                RequestError::new(
                    ErrorCode::NotAnObject,
                    "a request must be a JSON object such as {\"action\":\"ping\"}",
                )
            } else if e.is_data() {
                RequestError::new(ErrorCode::InvalidField, format!("invalid request: {e}"))
            } else {
                RequestError::new(
                    ErrorCode::InvalidJson,
                    format!("frame is not valid JSON: {e}"),
                )
            };
            return Parsed {
                request_id: None,
                action: Err(error),
            };
        }
    };
    let mut request_id = None;
    let action = match fields.request_id.map(check_request_id).transpose() {
        Ok(id) => {
            request_id = id;
            parse_action(&fields)
        }
        Err(e) => Err(e),
    };
    Parsed { request_id, action }
}

fn check_request_id(raw: &RawValue) -> Result<Box<RawValue>, RequestError> {
    let text = raw.get();
    let scalar = text.starts_with('"')
        || text.starts_with('-')
        || text.starts_with(|c: char| c.is_ascii_digit());
    if !scalar || text.len() > MAX_REQUEST_ID_BYTES {
        return Err(RequestError::new(
            ErrorCode::InvalidField,
            format!(
                "request_id must be a string or a number of at most {MAX_REQUEST_ID_BYTES} bytes"
            ),
        ));
    }
    Ok(raw.to_owned())
}

fn parse_action(f: &Fields<'_>) -> Result<Action, RequestError> {
    let action = required_string(
        "action",
        f.action,
        "one of authenticate, refresh, ping, subscribe, unsubscribe, forward",
    )?;
    match action.as_str() {
        "authenticate" | "refresh" => Ok(Action::Authenticate {
            token: required_string("token", f.token, "a JWT")?,
            refresh: action == "refresh",
        }),
        "ping" => Ok(Action::Ping),
        "subscribe" => Ok(Action::Subscribe {
            project_id: required_project_id(f.project_id)?,
            since: f.since.map(parse_since).transpose()?.flatten(),
        }),
        "unsubscribe" => Ok(Action::Unsubscribe {
            project_id: required_project_id(f.project_id)?,
        }),
        "forward" => parse_forward(f),
        other => Err(RequestError::new(
            ErrorCode::UnknownAction,
            format!(
                "unknown action {:?}: expected one of authenticate, refresh, ping, subscribe, unsubscribe, forward",
                short(other)
            ),
        )),
    }
}

fn parse_forward(f: &Fields<'_>) -> Result<Action, RequestError> {
    let names = QueueKind::names();
    let kind = string_field("type", f.kind)?.ok_or_else(|| {
        RequestError::new(
            ErrorCode::MissingField,
            format!("missing field \"type\" (the queue: {names})"),
        )
    })?;
    let queue = QueueKind::parse(&kind).ok_or_else(|| {
        RequestError::new(
            ErrorCode::UnknownQueue,
            format!("unknown queue type {:?}: expected {names}", short(&kind)),
        )
    })?;
    let data = f.data.ok_or_else(|| {
        RequestError::new(
            ErrorCode::MissingField,
            "missing field \"data\" (a JSON object)",
        )
    })?;
    if !data.get().starts_with('{') {
        return Err(RequestError::new(
            ErrorCode::InvalidField,
            "field \"data\" must be a JSON object",
        ));
    }
    let mut project_id = f
        .project_id
        .map(|raw| project_id_value(Some(raw)))
        .transpose()?;
    if project_id.is_none() {
        // The project named inside data also labels the message, when it is a valid id.
        #[derive(serde::Deserialize)]
        struct Inner {
            project_id: Option<String>,
        }
        if let Ok(Inner {
            project_id: Some(p),
        }) = serde_json::from_str::<Inner>(data.get())
            && valid_project_id(&p)
        {
            project_id = Some(p);
        }
    }
    Ok(Action::Forward {
        queue,
        project_id,
        data: data.to_owned(),
    })
}

/// A position in a project's updates (see `docs/protocol.md`, Positions and recovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The offset of the last update the client has.
    pub offset: u64,
    /// The epoch that offset belongs to.
    pub epoch: String,
}

/// Largest offset a client may send: JSON numbers are exact in JavaScript up to 2^53.
pub const MAX_OFFSET: u64 = 1 << 53;

/// The rule for epochs, which the server makes as 16 hex digits.
pub fn valid_epoch(e: &str) -> bool {
    !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `since`: `null` is no position; anything but `{"offset": 0..=2^53, "epoch": "<epoch>"}` is
/// refused with its own code, so a client bug is named rather than silently not recovered.
fn parse_since(raw: &RawValue) -> Result<Option<Since>, RequestError> {
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        offset: Option<&'a RawValue>,
        epoch: Option<serde_json::Value>,
    }
    let bad = |what: &str| {
        RequestError::new(
            ErrorCode::InvalidSince,
            format!(
                "since {what}: send {{\"offset\":N,\"epoch\":\"E\"}} from the last update or subscribed reply (N a whole number from 0 to 2^53, E its epoch), or leave since out"
            ),
        )
    };
    if raw.get() == "null" {
        return Ok(None);
    }
    let r: Raw<'_> = serde_json::from_str(raw.get())
        .map_err(|_| bad(&format!("must be an object, got {}", kind_of(raw))))?;
    let offset = r.offset.ok_or_else(|| bad("has no offset"))?;
    let offset = offset
        .get()
        .parse::<u64>()
        .ok()
        .filter(|o| *o <= MAX_OFFSET)
        .ok_or_else(|| {
            bad(&format!(
                "offset {} is not a whole number from 0 to 2^53",
                short(offset.get())
            ))
        })?;
    let epoch = match r.epoch {
        Some(serde_json::Value::String(e)) if valid_epoch(&e) => e,
        Some(serde_json::Value::String(_)) => {
            return Err(bad("epoch must be 1 to 64 letters and digits"));
        }
        Some(_) => return Err(bad("epoch must be a string")),
        None => return Err(bad("has no epoch")),
    };
    Ok(Some(Since { offset, epoch }))
}

fn required_string(name: &str, raw: Option<&RawValue>, hint: &str) -> Result<String, RequestError> {
    string_field(name, raw)?.ok_or_else(|| {
        RequestError::new(
            ErrorCode::MissingField,
            format!("missing field {name:?} ({hint})"),
        )
    })
}

fn string_field(name: &str, raw: Option<&RawValue>) -> Result<Option<String>, RequestError> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|_| {
                RequestError::new(
                    ErrorCode::InvalidField,
                    format!("field {name:?} must be a string, got {}", kind_of(raw)),
                )
            }),
    }
}

fn required_project_id(raw: Option<&RawValue>) -> Result<String, RequestError> {
    if raw.is_none() {
        return Err(RequestError::new(
            ErrorCode::MissingField,
            "missing field \"project_id\" (a non-empty string)",
        ));
    }
    project_id_value(raw)
}

fn project_id_value(raw: Option<&RawValue>) -> Result<String, RequestError> {
    let p = string_field("project_id", raw)?.unwrap_or_default();
    check_id("field \"project_id\"", &p)
        .map_err(|message| RequestError::new(ErrorCode::InvalidField, message))?;
    Ok(p)
}

/// Longest piece of a client's input quoted in an error message, so an error reply is never
/// much larger than the request (a 64 KiB action must not come back as a 450 KiB message).
pub const MAX_QUOTE_BYTES: usize = 64;

/// `s` cut to [`MAX_QUOTE_BYTES`] (on a character boundary), marked with `...` when cut.
pub fn short(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_QUOTE_BYTES {
        return s.into();
    }
    let mut end = MAX_QUOTE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end]).into()
}

/// The rule for ids: project ids (in requests, `?project_id=` on connect, `/publish`, the
/// `projects` claim) and user ids (the `sub` claim, `/publish`'s `user_id`).
pub fn valid_project_id(p: &str) -> bool {
    !p.is_empty() && p.len() <= MAX_PROJECT_ID_BYTES && !p.chars().any(char::is_control)
}

/// [`valid_project_id`], or the message that refuses `id` as `what` (e.g. `project_id`,
/// `claim sub`), so every refusal states the same rule.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if valid_project_id(id) {
        return Ok(());
    }
    Err(format!(
        "{what} must be a non-empty string of at most {MAX_PROJECT_ID_BYTES} bytes without control characters"
    ))
}

fn kind_of(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

// ---- replies ---------------------------------------------------------------------------------

/// Every frame the server sends, serialized once to text.
// The fields are the frame's, named as on the wire; docs/protocol.md describes each one.
#[allow(missing_docs)]
#[derive(Serialize, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply<'a> {
    /// The first frame of every connection: its id and the server's limits.
    Welcome {
        connection_id: &'a str,
        server_version: &'static str,
        subscriptions: &'a [String],
        max_frame_bytes: usize,
        max_subscriptions: usize,
        ping_interval_seconds: u64,
        /// Set when the upgrade's `Authorization` header authenticated the connection.
        user_id: Option<&'a str>,
        expires_at: Option<u64>,
        auth_timeout_seconds: u64,
    },
    /// The reply to `authenticate`.
    Authenticated {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RawValue>,
        #[serde(flatten)]
        session: SessionInfo<'a>,
    },
    /// The reply to `refresh`.
    Refreshed {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RawValue>,
        #[serde(flatten)]
        session: SessionInfo<'a>,
    },
    /// Sent once, shortly before the token expires.
    TokenExpiring { expires_at: u64, seconds_left: u64 },
    /// The reply to `ping`.
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RawValue>,
        timestamp: String,
    },
    /// The reply to `subscribe`, with the project's position.
    Subscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RawValue>,
        project_id: &'a str,
        offset: u64,
        epoch: &'a str,
        /// Present when the subscribe had `since` (or the server lost the client's position).
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    /// The reply to `unsubscribe`.
    Unsubscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RawValue>,
        project_id: &'a str,
    },
    /// The reply to `forward`: the SQS MessageId.
    Forwarded {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RawValue>,
        queue: QueueKind,
        message_id: &'a str,
    },
    /// A refused request (or a failed forward).
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a RawValue>,
        code: ErrorCode,
        message: &'a str,
    },
    /// Without its position: see [`positioned`].
    Update {
        #[serde(skip_serializing_if = "Option::is_none")]
        project_id: Option<&'a str>,
        data: &'a RawValue,
    },
    /// An update for one user (`POST /publish` with `user_id`).
    #[serde(rename = "update")]
    UserUpdate {
        user_id: &'a str,
        data: &'a RawValue,
    },
    /// Sent by a draining server just before its close 1001.
    Reconnect {
        reason: &'static str,
        jitter_ms: u64,
    },
}

/// Who a connection is and what it may do, as `authenticated` and `refreshed` report it.
#[derive(Serialize, Debug)]
pub struct SessionInfo<'a> {
    /// The token's `sub`.
    pub user_id: &'a str,
    /// When the token expires (unix seconds).
    pub expires_at: Option<u64>,
    /// The granted projects (`*` for all).
    pub projects: Vec<&'a str>,
    /// The granted queues (`*` for all).
    pub queues: Vec<&'static str>,
    /// The projects the connection follows now.
    pub subscriptions: Vec<&'a str>,
}

/// An update frame with its position: `base` is the text of a [`Reply::Update`] and gets
/// `,"offset":N,"epoch":"E"` before its closing brace. The broker's publish script
/// (`broker/scripts.rs`) builds the same text in Redis.
pub fn positioned(base: &str, offset: u64, epoch: &str) -> String {
    let open = base.strip_suffix('}').unwrap_or(base);
    format!("{open},\"offset\":{offset},\"epoch\":\"{epoch}\"}}")
}

impl Serialize for QueueKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Reply<'_> {
    /// The JSON text of the frame. Serializing these types cannot fail (no maps with non-string
    /// keys, no failing Serialize impls), so a failure is a bug and is reported as an error frame.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"type":"error","code":"internal","message":"reply encoding failed: {e}"}}"#
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ErrorCode {
        parse_request(text).action.expect_err(text).code
    }

    #[test]
    fn every_queue_parses_from_its_name_and_is_listed() {
        for q in QueueKind::ALL {
            assert_eq!(QueueKind::parse(q.as_str()), Some(q));
        }
        assert_eq!(QueueKind::parse("prod"), None);
        assert_eq!(QueueKind::names(), "pm, dev, qa or ops");
        assert_eq!(QueueKind::Qa.url_variable(), "SQS_QUEUE_URL_QA");
        // QueueUrls indexes by the discriminant.
        for (i, q) in QueueKind::ALL.into_iter().enumerate() {
            assert_eq!(q as usize, i);
        }
    }

    #[test]
    fn an_invalid_id_is_refused_with_the_rule() {
        assert_eq!(check_id("project_id", "p1"), Ok(()));
        for bad in ["", "a\u{7}b", &"x".repeat(MAX_PROJECT_ID_BYTES + 1)] {
            let e = check_id("project_id", bad).expect_err(bad);
            assert_eq!(
                e,
                "project_id must be a non-empty string of at most 256 bytes without control characters"
            );
        }
    }

    #[test]
    fn valid_requests() {
        assert!(matches!(
            parse_request(r#"{"action":"ping"}"#).action,
            Ok(Action::Ping)
        ));
        let p = parse_request(r#"{"action":"subscribe","project_id":"p1","request_id":7}"#);
        assert_eq!(p.request_id.as_ref().map(|r| r.get()), Some("7"));
        assert!(
            matches!(p.action, Ok(Action::Subscribe { project_id, since: None }) if project_id == "p1")
        );
        let p = parse_request(
            r#"{"action":"subscribe","project_id":"p1","since":{"offset":7,"epoch":"ab12"}}"#,
        );
        assert!(
            matches!(p.action, Ok(Action::Subscribe { since: Some(s), .. })
            if s == Since { offset: 7, epoch: "ab12".into() })
        );
        let p = parse_request(r#"{"action":"subscribe","project_id":"p1","since":null}"#);
        assert!(matches!(
            p.action,
            Ok(Action::Subscribe { since: None, .. })
        ));
        let f = parse_request(
            r#"{"action":"forward","type":"dev","data":{"project_id":"p9","x":[1, 2]}}"#,
        );
        match f.action {
            Ok(Action::Forward {
                queue,
                project_id,
                data,
            }) => {
                assert_eq!(queue, QueueKind::Dev);
                assert_eq!(project_id.as_deref(), Some("p9"));
                assert_eq!(data.get(), r#"{"project_id":"p9","x":[1, 2]}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_messages_quote_only_a_short_piece_of_the_input() {
        // Control characters grow 6-fold when escaped: the attack that made 65 KB into 455 KB.
        let text = format!(r#"{{"action":"{}"}}"#, "\\u0001".repeat(10_000));
        let e = parse_request(&text).action.expect_err("unknown action");
        assert_eq!(e.code, ErrorCode::UnknownAction);
        assert!(e.message.len() < 600, "{} bytes", e.message.len());
        assert_eq!(short("é".repeat(40).as_str()).len(), 64 + 3);
        assert_eq!(short("ok"), "ok");
    }

    #[test]
    fn each_mistake_has_its_code() {
        assert_eq!(err("nope"), ErrorCode::InvalidJson);
        assert_eq!(err(r#"{"action":"ping""#), ErrorCode::InvalidJson);
        assert_eq!(err("[1]"), ErrorCode::NotAnObject);
        assert_eq!(err("42"), ErrorCode::NotAnObject);
        assert_eq!(err("{}"), ErrorCode::MissingField);
        assert_eq!(err(r#"{"action":5}"#), ErrorCode::InvalidField);
        assert_eq!(err(r#"{"action":"dance"}"#), ErrorCode::UnknownAction);
        assert_eq!(err(r#"{"action":"subscribe"}"#), ErrorCode::MissingField);
        assert_eq!(
            err(r#"{"action":"subscribe","project_id":""}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            err(r#"{"action":"forward","type":"hr","data":{}}"#),
            ErrorCode::UnknownQueue
        );
        assert_eq!(
            err(r#"{"action":"forward","type":"dev"}"#),
            ErrorCode::MissingField
        );
        assert_eq!(
            err(r#"{"action":"forward","type":"dev","data":3}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            err(r#"{"action":"ping","request_id":{}}"#),
            ErrorCode::InvalidField
        );
    }

    #[test]
    fn a_malformed_since_has_its_code() {
        for since in [
            r#""7""#,
            "[1]",
            "{}",
            r#"{"offset":-1,"epoch":"ab"}"#,
            r#"{"offset":1.5,"epoch":"ab"}"#,
            r#"{"offset":"3","epoch":"ab"}"#,
            r#"{"offset":9007199254740993,"epoch":"ab"}"#,
            r#"{"offset":3}"#,
            r#"{"offset":3,"epoch":""}"#,
            r#"{"offset":3,"epoch":"not an epoch!"}"#,
            r#"{"offset":3,"epoch":7}"#,
        ] {
            let text = format!(r#"{{"action":"subscribe","project_id":"p","since":{since}}}"#);
            assert_eq!(err(&text), ErrorCode::InvalidSince, "{since}");
        }
    }

    #[test]
    fn positioned_adds_offset_and_epoch() {
        let data = RawValue::from_string(r#"{"a":1}"#.into()).expect("json");
        let base = Reply::Update {
            project_id: Some("p"),
            data: &data,
        }
        .to_text();
        assert_eq!(
            positioned(&base, 42, "e1"),
            r#"{"type":"update","project_id":"p","data":{"a":1},"offset":42,"epoch":"e1"}"#
        );
    }

    #[test]
    fn request_id_is_echoed_even_on_errors() {
        let p = parse_request(r#"{"action":"dance","request_id":"abc"}"#);
        assert_eq!(p.request_id.as_ref().map(|r| r.get()), Some("\"abc\""));
        let id = p.request_id.as_deref();
        let text = Reply::Error {
            request_id: id,
            code: ErrorCode::UnknownAction,
            message: "m",
        }
        .to_text();
        assert_eq!(
            text,
            r#"{"type":"error","request_id":"abc","code":"unknown_action","message":"m"}"#
        );
    }

    #[test]
    fn codes_are_distinct() {
        let mut seen: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ErrorCode::ALL.len());
    }
}
