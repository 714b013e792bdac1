//! Integration tests: map (filled in with the map work).
