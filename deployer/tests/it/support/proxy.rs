//! A proxy in front of the emulator that injects what moto never does: it holds every ECS
//! rollout in progress (DescribeServices answers pass through with no task running and the
//! primary deployment IN_PROGRESS; moto completes a rollout at once), or it throttles a run of
//! DescribeServices calls the way ECS does under load.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const DESCRIBE_SERVICES: &str = "AmazonEC2ContainerServiceV20141113.DescribeServices";

#[derive(Clone)]
struct Upstream {
    url: String,
    client: reqwest::Client,
    fault: Fault,
}

#[derive(Clone)]
enum Fault {
    HoldRollouts,
    /// DescribeServices calls number `pass + 1 ..= pass + throttle` get a ThrottlingException.
    Throttle {
        pass: usize,
        throttle: usize,
        seen: Arc<AtomicUsize>,
    },
}

/// Starts the proxy on a free loopback port; its URL, for `--endpoint-url`.
pub async fn holding_rollouts(upstream: &str) -> String {
    start(upstream, Fault::HoldRollouts).await
}

/// A proxy that passes `pass` DescribeServices calls, throttles the next `throttle`, then
/// passes again; with the number of DescribeServices calls it saw.
pub async fn throttling(
    upstream: &str,
    pass: usize,
    throttle: usize,
) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let fault = Fault::Throttle {
        pass,
        throttle,
        seen: seen.clone(),
    };
    (start(upstream, fault).await, seen)
}

async fn start(upstream: &str, fault: Fault) -> String {
    let state = Upstream {
        url: upstream.trim_end_matches('/').to_owned(),
        client: reqwest::Client::new(),
        fault,
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn forward(State(up): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Fault::Throttle {
        pass,
        throttle,
        seen,
    } = &up.fault
    {
        let n = if target == DESCRIBE_SERVICES {
            seen.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            0
        };
        if n > *pass && n <= pass + throttle {
            let mut response = Response::new(Body::from(
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response.headers_mut().insert(
                "content-type",
                "application/x-amz-json-1.1".parse().expect("header value"),
            );
            return response;
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            headers.insert(name.clone(), value.clone());
        }
    }
    let answer = up
        .client
        .request(parts.method, format!("{}{path}", up.url))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(answer) = answer else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let mut body = answer.bytes().await.unwrap_or_default();
    if matches!(up.fault, Fault::HoldRollouts) && target == DESCRIBE_SERVICES && status.is_success()
    {
        body = hold_in_progress(&body);
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response.headers_mut().insert("content-type", content_type);
    }
    response
}

fn hold_in_progress(body: &Bytes) -> Bytes {
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    for service in doc["services"].as_array_mut().into_iter().flatten() {
        service["runningCount"] = 0.into();
        for deployment in service["deployments"].as_array_mut().into_iter().flatten() {
            if deployment["status"] == "PRIMARY" {
                deployment["rolloutState"] = "IN_PROGRESS".into();
                deployment["runningCount"] = 0.into();
            }
        }
    }
    serde_json::to_vec(&doc).map_or_else(|_| body.clone(), Bytes::from)
}
