//! The benchmark harness behind `dualspace reproduce`: evaluation points and
//! their summary ([`summary`]), the measuring loops ([`runner`]), the
//! environment ([`env`]), the report's building blocks and plots
//! ([`report`]), and the run record with the report built from it
//! ([`document`]).
pub mod document;
pub mod env;
pub mod report;
pub mod runner;
pub mod summary;
