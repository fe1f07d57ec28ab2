//! The built binary refuses an invalid environment at start: exit code 2 and one message that
//! names every problem.

#[test]
fn invalid_configuration_lists_every_problem_and_exits_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ws-server"))
        .env("WEBSOCKET_PORT", "eighty")
        .env("WEBSOCKET_HOST", "0.0.0.0.0")
        .env("SQS_QUEUE_URL_DEV", "dev")
        .env("WS_MAX_FRAME_BYTES", "1000000")
        .env("WS_PING_INTERVAL_SECONDS", "-5")
        .env("PUBLISH_TOKEN", "short")
        .output()
        .expect("run ws-server");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Six bad values, and no token key (secure by default: no key, no start).
    assert!(stderr.contains("7 problem(s)"), "{stderr}");
    for name in [
        "WEBSOCKET_PORT",
        "WEBSOCKET_HOST",
        "SQS_QUEUE_URL_DEV",
        "WS_MAX_FRAME_BYTES",
        "WS_PING_INTERVAL_SECONDS",
        "PUBLISH_TOKEN",
        "WS_JWT_SECRET",
        "WS_AUTH=none",
    ] {
        assert!(stderr.contains(name), "{name} is not named in:\n{stderr}");
    }
    // The same problems are logged as one JSON line on stdout for CloudWatch.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: serde_json::Value =
        serde_json::from_str(stdout.lines().next().expect("a log line")).expect("JSON");
    assert_eq!(line["level"], "ERROR");
}
