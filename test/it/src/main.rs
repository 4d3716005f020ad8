//! The engine's command line, built inside the test package so that the integration tests find it
//! through `CARGO_BIN_EXE_xtask-under-test` (exactly what an adopter's thin xtask runs).
fn main() -> std::process::ExitCode {
    operator_e2e::main()
}
