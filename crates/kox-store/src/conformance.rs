//! The conformance suite every [`crate::Store`] engine must pass. (Being written.)
