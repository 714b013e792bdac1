//! The benchmark harness behind `dualspace reproduce`: evaluation points and
//! their summary ([`summary`]), the environment ([`env`]), and the report
//! with its plots ([`report`]).
pub mod env;
pub mod report;
pub mod summary;
