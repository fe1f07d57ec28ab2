//! The few bits of docs/protocol.md that the load generator speaks. Replies are not parsed into
//! JSON trees: the hot loops only need the `type` and one or two numbers, and at 100,000 messages
//! a second a full parse per message would make the generator, not the server, the bottleneck.
//! The scan takes the first occurrence of a key, which is enough for the server's flat replies and
//! the `lg_*` keys the generator puts in its own payloads.

/// The projects the generator subscribes to are named `lg-p0`, `lg-p1`, ...
pub fn project_name(i: u64) -> String {
    format!("lg-p{i}")
}

pub fn subscribe(project: &str) -> String {
    serde_json::json!({"action": "subscribe", "project_id": project}).to_string()
}

pub const PING: &str = r#"{"action":"ping"}"#;

/// The text right after `"key":` (whitespace skipped), for the first occurrence of `"key"` used as
/// a key.
fn after_key<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(pos) = json[from..].find(key) {
        let start = from + pos;
        let end = start + key.len();
        if start > 0 && bytes[start - 1] == b'"' && bytes.get(end) == Some(&b'"') {
            let rest = json[end + 1..].trim_start();
            if let Some(value) = rest.strip_prefix(':') {
                return Some(value.trim_start());
            }
        }
        from = end;
    }
    None
}

/// A string field (escapes are not decoded; the protocol's types and codes have none).
pub fn str_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let value = after_key(json, key)?.strip_prefix('"')?;
    value.find('"').map(|end| &value[..end])
}

/// A non-negative integer field.
pub fn u64_field(json: &str, key: &str) -> Option<u64> {
    let value = after_key(json, key)?;
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    value[..digits].parse().ok()
}

pub fn msg_type(json: &str) -> Option<&str> {
    str_field(json, "type")
}

/// `code: message` of an error reply, for reports.
pub fn describe_error(json: &str) -> String {
    format!(
        "{}: {}",
        str_field(json, "code").unwrap_or("?"),
        str_field(json, "message").unwrap_or(json)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_in_any_order_and_spacing() {
        let m = r#"{"data":{"lg_step":3,"lg_ts":123456,"pad":"xx"},"project_id":"lg-p1","type":"update"}"#;
        assert_eq!(msg_type(m), Some("update"));
        assert_eq!(u64_field(m, "lg_ts"), Some(123456));
        assert_eq!(u64_field(m, "lg_step"), Some(3));
        assert_eq!(str_field(m, "project_id"), Some("lg-p1"));
        let spaced = r#"{ "type" : "pong", "request_id" : "r1" }"#;
        assert_eq!(msg_type(spaced), Some("pong"));
        assert_eq!(str_field(spaced, "request_id"), Some("r1"));
    }

    #[test]
    fn ignores_the_key_text_inside_values_and_longer_keys() {
        let m = r#"{"note":"type","subtype":"x","type":"welcome","connection_id":"c-1"}"#;
        assert_eq!(msg_type(m), Some("welcome"));
        assert_eq!(u64_field(m, "lg_ts"), None);
        assert_eq!(u64_field(r#"{"lg_ts":"abc"}"#, "lg_ts"), None);
        assert_eq!(msg_type("not json"), None);
    }

    #[test]
    fn describes_error_replies() {
        let e = r#"{"type":"error","code":"unknown_queue","message":"no queue named zz"}"#;
        assert_eq!(describe_error(e), "unknown_queue: no queue named zz");
    }

    #[test]
    fn builds_requests_the_server_understands() {
        let s: serde_json::Value = serde_json::from_str(&subscribe("lg-p7")).expect("json");
        assert_eq!(s["action"], "subscribe");
        assert_eq!(s["project_id"], "lg-p7");
        let p: serde_json::Value = serde_json::from_str(PING).expect("json");
        assert_eq!(p["action"], "ping");
    }
}
