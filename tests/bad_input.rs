//! Bad input, in one place: wrong arguments, wrong settings, and servers that answer what no
//! Prefect API answers. Each case must end in the expected typed error, whose message says what
//! to do, without a panic; arguments the client can check are rejected before any request.

mod common;

use std::time::Duration;

use common::stub::{Reply, Stub};
use prefect_client::{Client, Config, Error};

/// Checks one case: the error is `expected` and its message contains each of `advice`.
fn check(
    case: &str,
    result: Result<impl std::fmt::Debug, Error>,
    expected: fn(&Error) -> bool,
    advice: &[&str],
) {
    let err = match result {
        Ok(value) => panic!("{case}: expected an error, got {value:?}"),
        Err(err) => err,
    };
    assert!(expected(&err), "{case}: unexpected error {err:?}");
    let message = err.to_string();
    for phrase in advice {
        assert!(
            message.contains(phrase),
            "{case}: {message:?} does not say {phrase:?}"
        );
    }
}

fn invalid(e: &Error) -> bool {
    matches!(e, Error::InvalidInput { .. })
}
fn config(e: &Error) -> bool {
    matches!(e, Error::Config(_))
}
fn decode(e: &Error) -> bool {
    matches!(e, Error::Decode { .. })
}

#[tokio::test]
async fn arguments_the_client_can_check_are_rejected_before_any_request() {
    let stub = Stub::start_scripted(vec![Reply::json(500, "{}")]).await;
    let client = Client::new(&stub.url).unwrap();
    let tags = client.concurrency_limits();
    let global = client.global_concurrency_limits();

    check("empty tag", tags.create("", 1).await, invalid, &["tag"]);
    check("tag with a slash", tags.create("a/b", 1).await, invalid, &["/"]);
    check(
        "negative tag limit",
        tags.create("t", -1).await,
        invalid,
        &["0 to 2147483647"],
    );
    check(
        "huge tag limit",
        tags.create("t", i64::MAX).await,
        invalid,
        &["2147483647"],
    );
    check("empty tag lookup", tags.get_by_tag("").await, invalid, &["tag"]);
    check("tag with %", tags.get_by_tag("50%").await, invalid, &["%"]);
    check(
        "taking tag slots for no tags",
        tags.increment(&[] as &[&str], uuid::Uuid::nil()).await,
        invalid,
        &["tag"],
    );
    check(
        "an empty page",
        tags.list_page(&prefect_client::types::ReadConcurrencyLimitsBody {
            limit: Some(0),
            ..Default::default()
        })
        .await,
        invalid,
        &["at least 1"],
    );
    check(
        "a lease under the server's minimum",
        global
            .increment_with_lease(["n"], 1)
            .lease_duration(Duration::from_secs(5))
            .send()
            .await,
        invalid,
        &["60 s"],
    );
    check(
        "a deployment name without its flow",
        client.deployments().get_by_name("no-slash").await,
        invalid,
        &["flow"],
    );
    check(
        "a variable name with a slash",
        client.variables().set("a/b", &1).await,
        invalid,
        &["/"],
    );
    check(
        "name with %",
        global.create("50%", 1).send().await,
        invalid,
        &["%"],
    );
    check("name with <", global.get_by_name("a<b").await, invalid, &["<"]);
    check(
        "negative global limit",
        global.create("n", -5).send().await,
        invalid,
        &["0 to 2147483647"],
    );
    check(
        "NaN slot decay",
        global.create("n", 1).slot_decay_per_second(f64::NAN).send().await,
        invalid,
        &["finite"],
    );
    check(
        "negative decay",
        global.create("n", 1).slot_decay_per_second(-1.0).send().await,
        invalid,
        &[">= 0"],
    );
    check(
        "negative limit update",
        global.update_by_name("n").limit(-3).send().await,
        invalid,
        &["0 to 2147483647"],
    );
    check(
        "deployment parameters that are not an object",
        client
            .deployments()
            .create_run(uuid::Uuid::nil())
            .parameters(&[1, 2, 3])
            .idempotency_key("k")
            .send()
            .await,
        invalid,
        &["JSON object"],
    );
    check(
        "a table artifact that is not a list",
        client.artifacts().create_table("t", &42).send().await,
        invalid,
        &["list of rows"],
    );
    check(
        "a negative page",
        client
            .flows()
            .list_page(&prefect_client::types::ReadFlowsBody {
                limit: Some(-5),
                ..Default::default()
            })
            .await,
        invalid,
        &["at least 1"],
    );
    check(
        "no names",
        client.concurrency(Vec::<String>::new()).acquire().await,
        invalid,
        &["name"],
    );
    check(
        "zero slots",
        client.concurrency(["n"]).slots(0).acquire().await,
        invalid,
        &["1"],
    );
    check(
        "short lease",
        client
            .concurrency(["n"])
            .lease_duration(Duration::from_secs(1))
            .acquire()
            .await,
        invalid,
        &["60 s"],
    );
    check(
        "endless lease",
        client
            .concurrency(["n"])
            .lease_duration(Duration::from_secs(7 * 24 * 3600))
            .acquire()
            .await,
        invalid,
        &["24 h"],
    );
    assert!(
        stub.requests().is_empty(),
        "nothing was sent: {:?}",
        stub.requests()
    );
}

#[tokio::test]
async fn wrong_settings_are_config_errors_that_name_the_setting() {
    check(
        "URL without scheme",
        Client::new("localhost:4200/api"),
        config,
        &["http://"],
    );
    check("ftp URL", Client::new("ftp://host/api"), config, &["http"]);
    check(
        "empty URL",
        Client::new(""),
        config,
        &["http://127.0.0.1:4200/api"],
    );
    check(
        "zero timeout",
        Client::builder("http://127.0.0.1:1/api")
            .request_timeout(Duration::ZERO)
            .build(),
        config,
        &["timeout"],
    );
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
                .or_else(|| (name == "PREFECT_HOME").then(|| "/nonexistent".to_string()))
        }
    };
    check(
        "no URL at all",
        Config::from_lookup(env(&[])),
        config,
        &["PREFECT_API_URL"],
    );
    check(
        "timeout that is not a number",
        Config::from_lookup(env(&[
            ("PREFECT_API_URL", "http://h:4200/api"),
            ("PREFECT_API_REQUEST_TIMEOUT", "soon"),
        ])),
        config,
        &["PREFECT_API_REQUEST_TIMEOUT"],
    );
    check(
        "negative retries",
        Config::from_lookup(env(&[
            ("PREFECT_API_URL", "http://h:4200/api"),
            ("PREFECT_CLIENT_MAX_RETRIES", "-1"),
        ])),
        config,
        &["PREFECT_CLIENT_MAX_RETRIES"],
    );
    check(
        "retry codes that are not codes",
        Config::from_lookup(env(&[
            ("PREFECT_API_URL", "http://h:4200/api"),
            ("PREFECT_CLIENT_RETRY_EXTRA_CODES", "5xx"),
        ])),
        config,
        &["PREFECT_CLIENT_RETRY_EXTRA_CODES"],
    );
    check(
        "skip-verify that is not a boolean",
        Config::from_lookup(env(&[
            ("PREFECT_API_URL", "http://h:4200/api"),
            ("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "maybe"),
        ])),
        config,
        &["PREFECT_API_TLS_INSECURE_SKIP_VERIFY"],
    );
    check(
        "API key with a newline",
        Client::builder("http://127.0.0.1:1/api")
            .api_key("pnu_\nx")
            .build(),
        config,
        &["PREFECT_API_KEY"],
    );

    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("profiles.toml"), "active = [broken").unwrap();
    let home_path = home.path().to_string_lossy().into_owned();
    check(
        "broken profiles.toml",
        Config::from_lookup(|name| (name == "PREFECT_HOME").then(|| home_path.clone())),
        config,
        &["profiles.toml"],
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_with_the_fix() {
    let client = common::unreachable_server().build().unwrap();
    check(
        "unreachable port",
        client.health().await,
        |e| matches!(e, Error::Connect { .. }),
        &["PREFECT_API_URL", "prefect server start"],
    );
}

/// Answers every request with `reply`; the client reads a tag limit from it.
async fn read_from(reply: Reply) -> Result<impl std::fmt::Debug, Error> {
    let stub = Stub::start(vec![reply]).await;
    let client = Client::builder(&stub.url).max_retries(0).build().unwrap();
    client.concurrency_limits().get_by_tag("t").await
}

#[tokio::test]
async fn servers_that_answer_nonsense_give_typed_errors() {
    check(
        "non-JSON 200",
        read_from(Reply::with_type(200, "text/plain", "hello")).await,
        decode,
        &["PREFECT_API_URL"],
    );
    check(
        "truncated JSON",
        read_from(Reply::json(200, r#"{"id": "5e0f"#)).await,
        decode,
        &["Prefect"],
    );
    check(
        "empty 200",
        read_from(Reply::json(200, "")).await,
        decode,
        &["PREFECT_API_URL"],
    );
    check(
        "JSON of the wrong shape",
        read_from(Reply::json(200, r#"{"tag": 5}"#)).await,
        decode,
        &["compatible Prefect"],
    );
    check(
        "HTML page with 200 (a login portal)",
        read_from(Reply::with_type(
            200,
            "text/html",
            "<html><body>Sign in</body></html>",
        ))
        .await,
        decode,
        &["/api"],
    );
    check(
        "HTML 502 from a proxy",
        read_from(Reply::with_type(
            502,
            "text/html",
            "<html><h1>502 Bad Gateway</h1></html>",
        ))
        .await,
        |e| matches!(e, Error::Server(api) if api.status.as_u16() == 502),
        &["502"],
    );
    check(
        "wrong API key",
        read_from(Reply::json(401, r#"{"detail":"Invalid API key"}"#)).await,
        |e| matches!(e, Error::Unauthorized(_)) && e.is_auth(),
        &["PREFECT_API_KEY"],
    );
    check(
        "forbidden",
        read_from(Reply::json(403, r#"{"detail":"Forbidden"}"#)).await,
        |e| matches!(e, Error::Forbidden(_)),
        &["role"],
    );
    check(
        "a URL missing /api",
        read_from(Reply::json(404, r#"{"detail":"Not Found"}"#)).await,
        |e| e.is_not_found(),
        &["/api"],
    );
    check(
        "rate limited for an hour",
        read_from(Reply::json(429, "{}").header("retry-after", "3600")).await,
        |e| matches!(e, Error::RateLimited { .. }),
        &["retry after"],
    );
}
