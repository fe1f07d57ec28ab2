//! The smoke test's client: a real WebSocket connection and a real `POST /publish`, each step
//! bounded in time so an endpoint that does not answer fails the check instead of hanging.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Check, Endpoint, Outcome, Report};
use crate::progress::Progress;

/// How long each step may take.
const CONNECT: Duration = Duration::from_secs(10);
const FRAME: Duration = Duration::from_secs(10);

/// What the smoke test authenticates with.
pub struct Credentials {
    /// A client JWT minted for the environment, granting `project`.
    pub token: String,
    /// The token's `sub`.
    pub user: String,
    /// A project of the smoke test's own, so no real client sees its update.
    pub project: String,
    /// The environment's `PUBLISH_TOKEN`, or why there is none to use.
    pub publish_token: Result<String, String>,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Runs the checks in order, stopping at the first failure; each one is shown as it ends.
pub async fn run(endpoint: &Endpoint, credentials: &Credentials, progress: &Progress) -> Report {
    // rustls needs one process-wide crypto provider; the SDK's is aws-lc-rs too. Installing
    // fails only when one is already installed, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let step = progress.step(format!("smoke {}", endpoint.websocket));
    let mut checks = Vec::new();
    let mut record = |name: &'static str, started: Instant, outcome: Outcome| {
        let check = Check {
            name,
            outcome,
            seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        };
        let (mark, detail) = match &check.outcome {
            Outcome::Passed(d) => ('✓', d),
            Outcome::Skipped(d) => ('-', d),
            Outcome::Failed(d) => ('✗', d),
        };
        step.println(format!("{mark} {name}: {detail}"));
        step.event("smoke_check", json!(check));
        let failed = matches!(check.outcome, Outcome::Failed(_));
        checks.push(check);
        !failed
    };
    let mut socket = None;
    let t = Instant::now();
    match connect(endpoint, credentials).await {
        Ok((s, status)) => {
            socket = Some(s);
            record("connect", t, Outcome::Passed(status));
        }
        Err(why) => {
            record("connect", t, Outcome::Failed(why));
        }
    }
    if let Some(mut socket) = socket {
        let _ = steps(&mut socket, endpoint, credentials, &mut record).await;
        let _ = socket.close(None).await;
    }
    let report = Report::new(endpoint.websocket.to_string(), checks);
    if report.passed {
        step.finish(report.describe());
    } else {
        step.fail(report.describe());
    }
    report
}

/// The checks after the connect; `record` returns false on a failure, which ends them.
async fn steps(
    socket: &mut Socket,
    endpoint: &Endpoint,
    credentials: &Credentials,
    record: &mut impl FnMut(&'static str, Instant, Outcome) -> bool,
) -> Option<()> {
    let t = Instant::now();
    let welcome = match next_frame(socket, |f| f["type"] == "welcome").await {
        Ok(frame) => check_welcome(&frame, credentials),
        Err(why) => Outcome::Failed(why),
    };
    record("welcome", t, welcome).then_some(())?;

    let t = Instant::now();
    let ping = json!({"action": "ping", "request_id": "wsctl-smoke-ping"}).to_string();
    let pong = match socket.send(Message::text(ping)).await {
        Err(err) => Outcome::Failed(format!("sending the ping: {err}")),
        Ok(()) => match next_frame(socket, |f| f["type"] == "pong").await {
            Ok(_) => Outcome::Passed("pong".into()),
            Err(why) => Outcome::Failed(why),
        },
    };
    record("ping", t, pong).then_some(())?;

    let t = Instant::now();
    let publish_token = match &credentials.publish_token {
        Ok(token) => token,
        Err(why) => {
            record("publish", t, Outcome::Skipped(why.clone()));
            record("receive", t, Outcome::Skipped(why.clone()));
            return Some(());
        }
    };
    let nonce = format!("{:016x}", fastrand::u64(..));
    let published = match publish(endpoint, publish_token, &credentials.project, &nonce).await {
        Published::Accepted(detail) => record("publish", t, Outcome::Passed(detail)),
        Published::Skipped(why) => {
            record("publish", t, Outcome::Skipped(why.clone()));
            record("receive", t, Outcome::Skipped(why));
            return Some(());
        }
        Published::Failed(why) => record("publish", t, Outcome::Failed(why)),
    };
    published.then_some(())?;

    let t = Instant::now();
    let received = match next_frame(socket, |f| {
        f["type"] == "update" && f["data"]["wsctl_smoke"] == nonce.as_str()
    })
    .await
    {
        Ok(_) => Outcome::Passed(format!(
            "the update reached project {}",
            credentials.project
        )),
        Err(why) => Outcome::Failed(format!("the published update did not arrive: {why}")),
    };
    record("receive", t, received).then_some(())
}

async fn connect(
    endpoint: &Endpoint,
    credentials: &Credentials,
) -> Result<(Socket, String), String> {
    let mut url = endpoint.websocket.clone();
    url.query_pairs_mut()
        .append_pair("project_id", &credentials.project);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("{url}: {e}"))?;
    let bearer = format!("Bearer {}", credentials.token)
        .parse()
        .map_err(|_| "the token is not a valid header value".to_owned())?;
    request.headers_mut().insert("authorization", bearer);
    match tokio::time::timeout(CONNECT, tokio_tungstenite::connect_async(request)).await {
        Err(_) => Err(format!(
            "no answer within {}s from {}",
            CONNECT.as_secs(),
            endpoint.websocket
        )),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            Err(format!(
                "the upgrade was refused with HTTP {}: {}",
                response.status(),
                body.trim()
            ))
        }
        Ok(Err(err)) => Err(format!("{}: {err}", endpoint.websocket)),
        Ok(Ok((socket, response))) => Ok((
            socket,
            format!("upgraded (HTTP {})", response.status().as_u16()),
        )),
    }
}

/// The next text frame that `wanted` accepts, skipping others (the subscription's position,
/// a server ping); fails on a close, an error frame, or after [`FRAME`].
async fn next_frame(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + FRAME;
    loop {
        let message = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Err(format!("no such frame within {}s", FRAME.as_secs())),
            Ok(None) => return Err("the server closed the connection".into()),
            Ok(Some(Err(err))) => return Err(format!("the connection failed: {err}")),
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(&text)
                    .map_err(|e| format!("a frame that is not JSON ({e}): {text}"))?;
                if wanted(&frame) {
                    return Ok(frame);
                }
                if frame["type"] == "error" {
                    return Err(format!("the server answered an error: {text}"));
                }
            }
            Message::Close(frame) => {
                return Err(format!(
                    "the server closed the connection{}",
                    frame.map_or_else(String::new, |f| format!(" ({} {})", f.code, f.reason))
                ));
            }
            _ => {}
        }
    }
}

fn check_welcome(frame: &Value, credentials: &Credentials) -> Outcome {
    if frame["user_id"] != credentials.user.as_str() {
        return Outcome::Failed(format!(
            "the welcome is not authenticated as {} (the token was not taken): {frame}",
            credentials.user
        ));
    }
    let subscribed = frame["subscriptions"]
        .as_array()
        .is_some_and(|s| s.iter().any(|p| p == credentials.project.as_str()));
    if !subscribed {
        return Outcome::Failed(format!(
            "the welcome does not list the subscription to {}: {frame}",
            credentials.project
        ));
    }
    Outcome::Passed(format!(
        "connection {} on server {}",
        frame["connection_id"].as_str().unwrap_or("?"),
        frame["server_version"].as_str().unwrap_or("?")
    ))
}

enum Published {
    Accepted(String),
    Skipped(String),
    Failed(String),
}

async fn publish(endpoint: &Endpoint, token: &str, project: &str, nonce: &str) -> Published {
    let client = match reqwest::Client::builder().timeout(FRAME).build() {
        Ok(client) => client,
        Err(err) => return Published::Failed(format!("no HTTP client: {err}")),
    };
    let sent = client
        .post(endpoint.publish.clone())
        .bearer_auth(token)
        .header("Idempotency-Key", format!("wsctl-smoke-{nonce}"))
        .json(&json!({"project_id": project, "data": {"wsctl_smoke": nonce}}))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(err) => return Published::Failed(format!("POST {}: {err}", endpoint.publish)),
    };
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    classify_publish(status, &body)
}

/// What `POST /publish`'s answer means for the smoke test.
fn classify_publish(status: u16, body: &str) -> Published {
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v["code"]
                .as_str()
                .or(v["error"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    match (status, code.as_str()) {
        (202, _) => Published::Accepted(format!("HTTP 202 {}", body.trim())),
        // The load balancer's own answer outside the VPC (templates/ecs.yaml, PublishElsewhereRule).
        (403, "forbidden") if body.contains("inside the VPC") => Published::Skipped(
            "POST /publish is only answered inside the VPC (the load balancer refused it from \
             here, as it should); run `wsctl smoke` from inside the VPC to check publishing"
                .into(),
        ),
        (404, "publish_disabled") => {
            Published::Skipped("the server has publishing off (no PUBLISH_TOKEN)".into())
        }
        _ => Published::Failed(format!("HTTP {status}: {}", body.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(published: Published) -> (&'static str, String) {
        match published {
            Published::Accepted(d) => ("accepted", d),
            Published::Skipped(d) => ("skipped", d),
            Published::Failed(d) => ("failed", d),
        }
    }

    #[test]
    fn the_albs_refusal_outside_the_vpc_is_a_skip_not_a_pass_or_a_failure() {
        let alb =
            r#"{"error":"forbidden","message":"POST /publish is only answered inside the VPC"}"#;
        let (k, why) = kind(classify_publish(403, alb));
        assert_eq!(k, "skipped");
        assert!(why.contains("inside the VPC"), "{why}");
        assert_eq!(kind(classify_publish(202, r#"{"offset":1}"#)).0, "accepted");
        assert_eq!(
            kind(classify_publish(
                404,
                r#"{"code":"publish_disabled","message":"x"}"#
            ))
            .0,
            "skipped"
        );
        // A wrong token is the server's 401: a real failure.
        let (k, why) = kind(classify_publish(401, r#"{"code":"unauthorized"}"#));
        assert_eq!(k, "failed");
        assert!(why.contains("HTTP 401"), "{why}");
        // Any other 403 is not the load balancer's rule.
        assert_eq!(kind(classify_publish(403, "denied")).0, "failed");
    }
}
