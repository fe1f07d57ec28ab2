//! What the broker keeps in Redis, and the two Lua scripts that change it.
//!
//! Per project X (hash tag `{X}`: every key of a project is in one cluster slot, so each script
//! touches one slot, as cluster mode requires):
//! - `ws:{X}:pos`, a hash: `epoch` and `top` (the last offset); outlives the history;
//! - `ws:{X}:hist`, a stream of the last `WS_HISTORY_SIZE` update frames, entry id `<offset>-0`;
//! - `ws:{X}:idem:<key>`: `"<offset> <epoch>"` of a publish with that `Idempotency-Key`.
//!
//! Per user U (per-user delivery, live-only): only `ws:user:{U}:idem:<key>`.
//!
//! Live updates travel on the channel `ws:u:X` as `"<offset> <epoch> <frame>"`; broadcasts on
//! `ws:all` and a user's updates on `ws:user:U` as the bare frame. A script's `PUBLISH` runs atomically with the writes before it,
//! so what is live and what is in history always agree.

use std::sync::LazyLock;

use redis::Script;

pub const BROADCAST_CHANNEL: &str = "ws:all";
const PROJECT_CHANNEL_PREFIX: &str = "ws:u:";
const USER_CHANNEL_PREFIX: &str = "ws:user:";

/// Seconds an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_SECONDS: u64 = 300;

/// The hash tag of a project: the id itself, or its bytes in hex when it has a brace (a tag
/// must be non-empty and brace-free, or Redis hashes the whole key and the slots differ).
fn tag(project: &str) -> std::borrow::Cow<'_, str> {
    if project.contains(['{', '}']) {
        let hex: String = project.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x{hex}").into()
    } else {
        project.into()
    }
}

pub fn position_key(project: &str) -> String {
    format!("ws:{{{}}}:pos", tag(project))
}

pub fn history_key(project: &str) -> String {
    format!("ws:{{{}}}:hist", tag(project))
}

pub fn idempotency_key(project: Option<&str>, key: &str) -> String {
    match project {
        Some(p) => format!("ws:{{{}}}:idem:{key}", tag(p)),
        None => format!("ws:{{all}}:idem:{key}"),
    }
}

/// A user's idempotency keys: `ws:user:{U}` can never be a project's key (those start `ws:{`).
pub fn user_idempotency_key(user: &str, key: &str) -> String {
    format!("ws:user:{{{}}}:idem:{key}", tag(user))
}

pub fn user_channel(user: &str) -> String {
    format!("{USER_CHANNEL_PREFIX}{user}")
}

/// The user of a channel name, `None` for project and broadcast channels.
pub fn channel_user(channel: &str) -> Option<&str> {
    channel.strip_prefix(USER_CHANNEL_PREFIX)
}

pub fn project_channel(project: &str) -> String {
    format!("{PROJECT_CHANNEL_PREFIX}{project}")
}

/// The project of a channel name, `None` for the broadcast channel.
pub fn channel_project(channel: &str) -> Option<&str> {
    channel.strip_prefix(PROJECT_CHANNEL_PREFIX)
}

/// Publish to a project. KEYS: pos, hist[, idem]. ARGV: the frame without its closing brace
/// (`protocol::positioned` builds the same text), channel, history size, history TTL, position
/// TTL, a fresh epoch (used only when the project has none: new, expired or flushed),
/// idempotency TTL. Returns `{offset, epoch, duplicate}`.
pub static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local pos, hist = KEYS[1], KEYS[2]
if #KEYS == 3 then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local sp = string.find(seen, ' ', 1, true)
    return {tonumber(string.sub(seen, 1, sp - 1)), string.sub(seen, sp + 1), 1}
  end
end
local epoch = redis.call('HGET', pos, 'epoch')
if not epoch then
  epoch = ARGV[6]
  redis.call('DEL', hist)
  redis.call('HSET', pos, 'epoch', epoch, 'top', 0)
end
local top = redis.call('HINCRBY', pos, 'top', 1)
local frame = ARGV[1] .. ',"offset":' .. top .. ',"epoch":"' .. epoch .. '"}'
redis.call('XADD', hist, 'MAXLEN', ARGV[3], top .. '-0', 'f', frame)
redis.call('EXPIRE', hist, ARGV[4])
redis.call('EXPIRE', pos, ARGV[5])
redis.call('PUBLISH', ARGV[2], top .. ' ' .. epoch .. ' ' .. frame)
if #KEYS == 3 then
  redis.call('SET', KEYS[3], top .. ' ' .. epoch, 'EX', ARGV[7])
end
return {top, epoch, 0}
"#,
    )
});

/// Publish live-only, to every connection or to a user's channel. KEYS: [idem]. ARGV: frame,
/// channel, idempotency TTL.
/// Returns 1 when the key was seen (nothing sent), else 0.
pub static BROADCAST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if #KEYS == 1 then
  if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) == false then
    return 1
  end
end
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 0
"#,
    )
});

/// Position and, with a `since`, the updates after it. KEYS: pos, hist. ARGV: since offset (-1
/// for none), since epoch, most to replay, position TTL, a fresh epoch. Returns `{epoch, top,
/// status, frames...}`, status 0 no since, 1 recovered (frames are since+1..top), 2 lost.
pub static RECOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local pos, hist = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', pos, 'epoch')
local top = 0
if not epoch then
  epoch = ARGV[5]
  redis.call('DEL', hist)
  redis.call('HSET', pos, 'epoch', epoch, 'top', 0)
else
  top = tonumber(redis.call('HGET', pos, 'top'))
end
redis.call('EXPIRE', pos, ARGV[4])
local since = tonumber(ARGV[1])
if since < 0 then
  return {epoch, top, 0}
end
if ARGV[2] ~= epoch or since > top or top - since > tonumber(ARGV[3]) then
  return {epoch, top, 2}
end
if since == top then
  return {epoch, top, 1}
end
local want = top - since
local entries = redis.call('XRANGE', hist, (since + 1) .. '-0', '+', 'COUNT', want)
if #entries ~= want or entries[1][1] ~= (since + 1) .. '-0' then
  return {epoch, top, 2}
end
local out = {epoch, top, 1}
for _, e in ipairs(entries) do
  out[#out + 1] = e[2][2]
end
return out
"#,
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_project_is_in_one_slot() {
        // The slot is taken from the first {...}: the same for every key of a project, even
        // when the project id itself has braces; never an empty tag.
        for p in ["p1", "a}b", "{x}", "ü", "}abc", "{}"] {
            let tag = |k: &str| {
                let open = k.find('{').expect("brace");
                let close = k[open + 1..].find('}').expect("closing") + open + 1;
                k[open + 1..close].to_owned()
            };
            let t = tag(&position_key(p));
            assert!(!t.is_empty() && !t.contains('{'), "{p}: {t}");
            assert_eq!(tag(&history_key(p)), t, "{p}");
            assert_eq!(tag(&idempotency_key(Some(p), "k")), t, "{p}");
        }
        assert_eq!(channel_project(&project_channel("a b")), Some("a b"));
        assert_eq!(channel_project(BROADCAST_CHANNEL), None);
        assert_eq!(channel_user(&user_channel("a b")), Some("a b"));
        assert_eq!(channel_user(&project_channel("ser:x")), None);
        assert_eq!(channel_project(&user_channel("x")), None);
        let t = user_idempotency_key("a}b", "k");
        assert!(
            t.starts_with("ws:user:{x") && !position_key("a}b").starts_with("ws:user:"),
            "{t}"
        );
    }
}
