//! Prometheus assertions filtered by run, against a real Prometheus scraping real demo processes.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use operator_e2e::e2e::infra::metrics::{scope, selector, Client, Data, Matcher, QueryError};
use testkit::prometheus::{demo_binary, Demo, PrometheusServer};

fn count(data: &Data) -> usize {
    data.samples().len()
}

#[test]
fn each_runs_queries_see_only_its_own_series_and_the_filter_is_what_isolates() {
    let demo = demo_binary().unwrap();
    let runs = ["run-a1", "run-b2", "run-c3"];
    let demos: Vec<Demo> = runs.iter().map(|r| Demo::start(&demo, r, "service", &[]).unwrap()).collect();
    let targets: Vec<(String, String)> =
        demos.iter().zip(runs).map(|(d, r)| (d.addr.clone(), r.to_string())).collect();
    let prom = PrometheusServer::start(&targets).unwrap();
    let client = Client::new(&prom.url());

    // Unfiltered, every run's series is visible: the filter is what isolates.
    let all = client.wait_for("e2e_demo_up", "3 series", |d| count(d) == 3, Duration::from_secs(60)).unwrap();
    assert_eq!(count(&all), 3);
    for run in runs {
        let expr = scope("e2e_demo_up + 0 * e2e_demo_requests_total", &Matcher::run(run).unwrap()).unwrap();
        let data = client.wait_for(&expr, "one series", |d| count(d) == 1, Duration::from_secs(30)).unwrap();
        let samples = data.samples();
        assert_eq!(samples.len(), 1, "{expr}: {samples:?}");
        assert_eq!(samples[0].labels.get("run_id").map(String::as_str), Some(run));
        // A range query through the same filter sees the same single series.
        let range = client
            .query_range(
                &scope("e2e_demo_up", &Matcher::run(run).unwrap()).unwrap(),
                Duration::from_secs(10),
                Duration::from_secs(1),
                Duration::from_secs(10),
            )
            .unwrap();
        match range {
            Data::Matrix(series) => {
                assert_eq!(series.len(), 1);
                assert_eq!(series[0].0.get("run_id").map(String::as_str), Some(run));
            }
            other => panic!("expected a matrix: {other:?}"),
        }
    }

    // The command line does the same.
    let sandbox = crate::harness::Sandbox::new();
    let out = sandbox
        .xtask(&["metrics", "query", "e2e_demo_up", "--run-id", "run-b2", "--show"])
        .env("E2E_PROMETHEUS_URL", prom.url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("e2e_demo_up{run_id=\"run-b2\"}\n"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("run_id=\"")).count(),
        2,
        "the expression and one series: {text}"
    );
    assert!(!text.contains("run-a1") && !text.contains("run-c3"), "{text}");

    // `check promql`: the run's series only (unscoped, the count would be 3), against a predicate.
    let check = |args: &[&str]| {
        let out = sandbox
            .xtask(&[&["check", "promql", "--run-id", "run-b2"], args].concat())
            .env("E2E_PROMETHEUS_URL", prom.url())
            .output()
            .unwrap();
        (out.status.code(), crate::harness::text(&out))
    };
    let (code, text) = check(&["count(e2e_demo_up)", "--expect", "== 1"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = check(&["e2e_demo_up", "--expect", "> 1", "--timeout", "2s"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("did not become > 1") && text.contains("run-b2"), "{text}");
    assert_eq!(check(&["e2e_demo_up{job=\"nope\"}", "--expect", "empty"]).0, Some(0));
    assert_eq!(check(&["e2e_demo_up", "--expect", "empty", "--timeout", "1s"]).0, Some(1));
}

#[test]
fn label_values_with_quotes_and_backslashes_round_trip_through_the_builder_and_prometheus() {
    let demo = demo_binary().unwrap();
    let role = r#"say "hi" \o/"#;
    let d = Demo::start(&demo, "run-esc1", role, &[]).unwrap();
    let prom = PrometheusServer::start(&[(d.addr.clone(), "run-esc1".into())]).unwrap();
    let client = Client::new(&prom.url());
    let expr = selector("e2e_demo_up", &[Matcher::eq("role", role).unwrap()]);
    assert_eq!(expr, r#"e2e_demo_up{role="say \"hi\" \\o/"}"#);
    let scoped = scope(&expr, &Matcher::run("run-esc1").unwrap()).unwrap();
    let data = client.wait_for(&scoped, "one series", |d| count(d) == 1, Duration::from_secs(60)).unwrap();
    assert_eq!(data.samples()[0].labels.get("role").map(String::as_str), Some(role));
    // Injection through the run id is refused before any query is made.
    assert!(Matcher::run(r#"x"} or vector(1) or up{a=""#).is_err());
}

#[test]
fn a_starting_prometheus_is_waited_for_and_promql_errors_carry_prometheus_message() {
    let prom = PrometheusServer::start(&[]).unwrap();
    // Right after start it is not ready: no listener yet, or 503 "Service Unavailable".
    let raw: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let early = raw.get(format!("{}/api/v1/query?query=1", prom.url())).call().map(|r| r.status().as_u16());
    assert!(!matches!(early, Ok(200)), "expected Prometheus to still be starting: {early:?}");
    let client = Client::new(&prom.url());
    let data = client.query("vector(7)", Duration::from_secs(60)).unwrap();
    assert_eq!(data.samples()[0].value, 7.0);

    match client.query("sum(", Duration::from_secs(5)) {
        Err(QueryError::BadQuery(message)) => assert!(message.contains("parse error"), "{message}"),
        other => panic!("expected a 400 bad_data error: {other:?}"),
    }
    let err = client.wait_for("sum(", "anything", |_| true, Duration::from_secs(5)).unwrap_err().to_string();
    assert!(err.contains("Prometheus rejected the query") && err.contains("parse error"), "{err}");
}
