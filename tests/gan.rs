//! Integration tests: gan (filled in with the gan work).
