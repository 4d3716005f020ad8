//! `operator-e2e`: the same commands as `cargo xtask …`, for repositories that want no Rust of
//! their own (`cargo install --git … --locked operator-e2e`).

fn main() -> std::process::ExitCode {
    operator_e2e::main()
}
