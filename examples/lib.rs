//! Runnable examples of embedding Dawn; see the `examples/` files.
