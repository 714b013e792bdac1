//! Integration tests: data (filled in with the data work).
