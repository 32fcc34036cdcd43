//! Small pieces every layer may use.

pub mod rng;
