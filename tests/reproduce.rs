//! Integration tests: reproduce (filled in with the reproduce work).
