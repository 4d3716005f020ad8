//! What the engine hands the real clients, read by the real clients: the arguments a setup or a
//! quickstart gives helm and kubectl are replayed into the real helm (v3.17.2) and the real kubectl
//! (its kustomize), offline, where the fake toolchain would accept anything.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

use crate::harness::{text, Sandbox};

use crate::harness::write;

/// A value a variable brings into `--set` (here with a comma, braces and a backslash) reaches the
/// chart whole: the real helm reads the `--set` setup passed as exactly that value. Unescaped, helm
/// refuses it (`key "b{c}" has no value`, pkg/strvals).
#[test]
fn a_variables_value_in_helm_set_reaches_the_real_chart_whole() {
    let helm = testkit::real::helm();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "chart/Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\n");
    write(dir.path(), "chart/values.yaml", "odd: \"\"\nplain: \"\"\n");
    write(
        dir.path(),
        "chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  odd: {{ .Values.odd | quote }}\n  plain: {{ .Values.plain | quote }}\n",
    );
    let def = dir.path().join("e2e.toml");
    std::fs::write(
        &def,
        r#"[cluster]
name = "e2e"

[[deploy]]
name = "app"
namespace = "apps"
helm = { chart = "chart", set = { "odd" = "${ODD_VALUE}", "plain" = "x-${ODD_VALUE}" } }
"#,
    )
    .unwrap();
    let fake = crate::harness::fake();
    let sandbox = Sandbox::with_fake(&fake);
    let odd = r"a,b{c}\d";
    let out = sandbox
        .xtask(&["setup", "--definition", def.to_str().unwrap()])
        .env("ODD_VALUE", odd)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let upgrade = fake
        .journal()
        .unwrap()
        .into_iter()
        .find(|c| c.tool == "helm" && c.argv.first().is_some_and(|a| a == "upgrade"))
        .expect("the chart was installed");
    let sets: Vec<&String> = upgrade.argv.windows(2).filter(|w| w[0] == "--set").map(|w| &w[1]).collect();
    assert_eq!(sets.len(), 2, "{:?}", upgrade.argv);
    let mut render = Command::new(&helm);
    render.args(["template", "app"]).arg(dir.path().join("chart"));
    for s in &sets {
        render.args(["--set", s]);
    }
    let rendered = render.output().unwrap();
    assert!(rendered.status.success(), "the real helm refused {sets:?}: {}", text(&rendered));
    let yaml = String::from_utf8_lossy(&rendered.stdout);
    assert!(yaml.contains(r#"odd: "a,b{c}\\d""#), "{yaml}");
    assert!(yaml.contains(r#"plain: "x-a,b{c}\\d""#), "{yaml}");
}
