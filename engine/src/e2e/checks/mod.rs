//! Checks: the runner (rollouts, conditions, files in a run's Git checkout, metrics), the
//! `check` command for a run's own flows, and the `quickstart` command.

pub mod check;
pub mod quickstart;
pub mod runner;
