//! Integration tests: eval (filled in with the eval work).
