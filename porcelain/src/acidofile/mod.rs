//! The Acidofile: a small build language on top of `startbuild`, `copy`,
//! `run` and `build` (grammar in [`parse`] and `acido-build(5)`).

pub mod parse;
