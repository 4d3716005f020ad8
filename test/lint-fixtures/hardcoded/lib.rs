// pkill -f x in a comment
fn f(run_id: &str) {
    let _ = Command::new("pkill").arg("-f");
    let ns = "sut";
    let s = r#"kubectl -n sut get pods"#;
    let t = format!("/tmp/x-{run_id}");
    let p = "127.0.0.1:8081";
    /* kubectl delete --all */
}
