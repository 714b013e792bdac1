//! The integration tests of dualspace: one test binary (each test binary links
//! libtorch, which is slow), one module per area. They run the real `dualspace`
//! binary on tiny generated fixtures, and on the real data sets when they are
//! installed.
mod support;

mod data;
mod eval;
mod gan;
mod map;
mod reproduce;
