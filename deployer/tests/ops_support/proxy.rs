//! A proxy in front of the emulator that holds every ECS rollout in progress: DescribeServices
//! answers pass through with no task running and the primary deployment IN_PROGRESS. moto
//! completes a rollout at once, so this is how a test gets a wait that does not end by itself.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

const DESCRIBE_SERVICES: &str = "AmazonEC2ContainerServiceV20141113.DescribeServices";

#[derive(Clone)]
struct Upstream {
    url: String,
    client: reqwest::Client,
}

/// Starts the proxy on a free loopback port; its URL, for `--endpoint-url`.
pub async fn holding_rollouts(upstream: &str) -> String {
    let state = Upstream {
        url: upstream.trim_end_matches('/').to_owned(),
        client: reqwest::Client::new(),
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
    if target == DESCRIBE_SERVICES && status.is_success() {
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
