//! busbar-tests: helpers for black-box tests.
