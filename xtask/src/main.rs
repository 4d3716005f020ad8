//! `cargo xtask`: this repository adopts the engine exactly as an operator repository does.
fn main() -> std::process::ExitCode {
    operator_e2e::main()
}
